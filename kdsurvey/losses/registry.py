"""Registry of distillation losses, by name.

Each loss module (see ``MODULES``) decorates its classes with :func:`register`. Importing this
module does not import torch: the catalogue validates the ``loss`` field of paper records through
:func:`declared_names`, which reads the ``register(...)`` calls from the loss modules' source
instead of importing them. The test suite checks that the
declared names and the registered classes agree.
"""

from __future__ import annotations

import ast
import difflib
import importlib
from functools import cache
from pathlib import Path

MODULES = ("logit", "feature", "feature_learned", "similarity", "segmentation")

_REGISTRY: dict[str, type] = {}


def register(name: str, *, paper: str, family: str):
    """Class decorator: file a loss under ``name``, citing the catalogue id of its ``paper``."""

    def wrap(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"loss {name!r} is registered twice")
        cls.name = name
        cls.paper = paper
        cls.family = family
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


@cache
def declared_names() -> dict[str, str]:
    """Loss name -> module file (``logit.py``...) of every ``register`` call, read from source.

    Reading source instead of importing keeps the catalogue free of torch.
    """
    here = Path(__file__).parent
    names = {}
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
                names[node.args[0].value] = path.name
    return names
