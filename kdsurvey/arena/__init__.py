"""The arena: every registered distillation loss trained the same way on real (offline) data.

``run_arena`` and ``merge`` (library, :mod:`kdsurvey.arena.core`), ``kdsurvey.arena.cli.run(args)``
(command line), ``compare`` (your own dataset, teacher and student: :mod:`kdsurvey.arena.byo`).
Importing this package does not import torch; the names below load on first use.
"""

from __future__ import annotations

__all__ = ["Recipe", "Task", "compare", "merge", "run_arena"]


def __getattr__(name: str):
    if name == "compare":
        from kdsurvey.arena.byo import compare

        return compare
    if name in ("Recipe", "Task", "merge", "run_arena"):
        from kdsurvey.arena import core

        return getattr(core, name)
    raise AttributeError(f"module 'kdsurvey.arena' has no attribute {name!r}")
