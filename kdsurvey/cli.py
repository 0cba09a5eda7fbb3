"""The ``kdsurvey`` command line: verbs and nouns (``kdsurvey check links``), quiet on success.

This module only assembles the verbs of :mod:`kdsurvey.commands` and maps what escapes them to
exit codes CI can trust (:data:`kdsurvey.commands.common.EXIT_CODES`): 0 success, 1 the catalogue
(or a check) found problems, 2 bad usage, 3 the link check could not reach the network.
Data goes to stdout (``--format json`` for machines); progress and errors go to stderr.
Heavy modules (torch, mkdocs, requests) are imported inside the command that needs them.
"""

from __future__ import annotations

import argparse
import os
import sys

from kdsurvey import __version__
from kdsurvey.commands import (
    arena,
    build,
    check,
    export,
    import_,
    losses,
    new,
    readme,
    schema,
    serve,
    validate,
)
from kdsurvey.commands.common import EXIT_CODES, Failure, check_device, missing_extra

#: In the order ``kdsurvey --help`` lists them.
COMMANDS = (validate, readme, build, serve, schema, losses, arena, export, import_, check, new)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kdsurvey",
        description="The knowledge-distillation survey: records, README, site, "
        "citations, checks and reference losses.",
        epilog="exit codes (every command):\n"
        + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_device(getattr(args, "device", None))  # every --device option, before any work
        args.func(args)
    except Failure as exc:
        if str(exc):
            print(str(exc), file=sys.stderr)
        return exc.code
    except ModuleNotFoundError as exc:
        hint = missing_extra(args, exc)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kdsurvey ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
