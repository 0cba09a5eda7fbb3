"""Registry of distillation losses, by name.

Each loss module (see ``MODULES``) decorates its classes with :func:`register`. Importing this
module does not import torch: the catalogue validates the ``loss`` field of paper records through
:func:`declared_names`, which reads the ``register(...)`` calls from the loss modules' source
instead of importing them. The test suite checks that the declared names and the registered
classes agree.
"""

from __future__ import annotations

import ast
import difflib
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MODULES = ("logit", "feature", "feature_learned", "similarity", "segmentation")

_REGISTRY: dict[str, type] = {}

# How far each implementation is proven, strongest first; shown by `losses list` and the site.
EVIDENCE = {
    "reference": "matches the loss and gradients that the official code gives on stored reference "
    "cases (`kdsurvey losses verify`)",
    "compared": "compared with the official code on random inputs, with no stored case (e.g. "
    "because the loss itself is random)",
    "paper": "no official code is available: written from the paper; the docstring says what "
    "had to be inferred",
}


def register(name: str, *, paper: str, family: str, evidence: str):
    """Class decorator: file a loss under ``name``, citing the catalogue id of its ``paper`` and
    saying how it was checked (a key of :data:`EVIDENCE`)."""
    if evidence not in EVIDENCE:
        raise ValueError(f"loss {name!r}: evidence must be one of {sorted(EVIDENCE)}")

    def wrap(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"loss {name!r} is registered twice")
        cls.name = name
        cls.paper = paper
        cls.family = family
        cls.evidence = evidence
        _REGISTRY[name] = cls
        return cls

    return wrap


@cache
def _load_all() -> None:
    for module in MODULES:
        importlib.import_module(f"kdsurvey.losses.{module}")


def available() -> list[str]:
    """Sorted names of every registered loss."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> type:
    """The loss class registered as ``name``; ``KeyError`` listing close matches otherwise."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown loss {name!r}{hint}") from None


def create(name: str, **kwargs):
    """Instantiate the loss registered as ``name`` with the given hyperparameters."""
    return get(name)(**kwargs)


@dataclass(frozen=True)
class Declaration:
    """What a ``register(...)`` call says about a loss, read without importing its module."""

    module: str  # file name in kdsurvey/losses/
    evidence: str  # a key of EVIDENCE


@cache
def declarations() -> dict[str, Declaration]:
    """Loss name -> its :class:`Declaration`, for every ``register`` call, read from source.

    Reading source instead of importing keeps the catalogue (README, site, validation) free of
    torch.
    """
    here = Path(__file__).parent
    found = {}
    for module in MODULES:
        path = here / f"{module}.py"
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "register"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                evidence = {k.arg: k.value for k in node.keywords}.get("evidence")
                found[node.args[0].value] = Declaration(
                    path.name, evidence.value if isinstance(evidence, ast.Constant) else ""
                )
    return found


@cache
def declared_names() -> dict[str, str]:
    """Loss name -> module file (``logit.py``...) of every ``register`` call."""
    return {name: d.module for name, d in declarations().items()}
