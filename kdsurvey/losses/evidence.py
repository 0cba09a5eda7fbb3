"""How far each loss implementation is proven, strongest first (torch-free).

``reference`` is never declared: a loss has it exactly when its stored case file
``tests/fixtures/official_cases/<name>.json`` exists. Every other loss declares one of the other
levels in its ``register(...)`` call. The registry, ``kdsurvey losses list``, the manifest, the
README and the site all read this one table.
"""

from __future__ import annotations

LEVELS: dict[str, str] = {
    "reference": "Matches the loss and gradients that the official code gives on stored reference "
    "cases (tests/fixtures/official_cases, run by `kdsurvey losses verify`).",
    "compared": "Compared with the official code on random inputs, with no stored case (e.g. "
    "because the loss itself is random).",
    "unchecked": "Official code exists, but nobody has compared this implementation with it yet.",
    "paper": "No official code is available: written from the full text of the paper; the "
    "docstring's notes say what had to be inferred.",
    "abstract": "Neither official code nor the full text was available: written from the "
    "abstract; the docstring's notes say what had to be inferred.",
    "title": "Only the title was available: a guess at the method, to be replaced.",
}

# The levels a ``register`` call may declare: ``reference`` is derived from the case files.
DECLARABLE = tuple(level for level in LEVELS if level != "reference")
