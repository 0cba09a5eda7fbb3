"""``kdsurvey arena``: every distillation loss trained the same way on offline digits data.

``kdsurvey arena [--losses ...] [--task ...] [--seeds N] [--epochs N] [--device ...] [--out FILE]
[--shard K/N]`` runs (or resumes) the comparison; ``kdsurvey arena merge FILE... --out FILE``
joins results files. The work is in :mod:`kdsurvey.arena` (needs the ``arena`` extra).
"""

from __future__ import annotations

from kdsurvey.commands.common import Failure, command


def run(args) -> None:
    from kdsurvey.arena import cli

    try:
        code = cli.run(args)
    except KeyError as exc:  # an unknown loss name, with close matches
        raise Failure(str(exc.args[0]), 2) from None
    except ValueError as exc:  # bad --shard, results file of another configuration
        raise Failure(str(exc), 2) from None
    if code:
        raise Failure("", code)


def register(subparsers) -> None:
    from kdsurvey.arena.cli import add_arguments

    p = command(
        subparsers, "arena", run, "compare every distillation loss on offline data", (), "arena"
    )
    add_arguments(p)
