"""Registry of distillation losses, by name.

Every public module of this package (one per method: ``dkd.py``, ``lskd.py``...) decorates its
classes with :func:`register`; the modules are found by listing the package, so a new module is
registered without being listed anywhere and none can be left out. Modules whose name starts with
``_`` hold shared math; :data:`INFRASTRUCTURE` names the modules that are not losses. Importing this
module does not import torch; torch-free readers (catalogue, README, site) use
:mod:`kdsurvey.losses.manifest` instead.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from functools import cache
from pathlib import Path

from kdsurvey.losses.evidence import DECLARABLE

PACKAGE = Path(__file__).parent
INFRASTRUCTURE = frozenset(
    {"base", "registry", "manifest", "verify", "demo", "evidence", "conventions"}
)

_REGISTRY: dict[str, type] = {}


def loss_modules() -> list[str]:
    """Names of the package's loss modules (not ``_``-prefixed, not infrastructure), sorted."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(PACKAGE)])
        if not info.name.startswith("_") and info.name not in INFRASTRUCTURE
    )


def register(name: str, *, paper: str, evidence: str | None = None):
    """Class decorator: file a loss under ``name``, citing the catalogue id of its ``paper``.

    ``evidence`` says how far the loss is proven when it has no stored reference cases: one of
    :data:`kdsurvey.losses.evidence.DECLARABLE`. Left out, the loss is ``reference``: it has a
    case file ``tests/fixtures/official_cases/<name>.json``. The file's existence is what counts;
    a test keeps the two in step (the file is not looked up here, since an installed package has
    no tests folder).
    """
    if evidence is not None and evidence not in DECLARABLE:
        raise ValueError(f"loss {name!r}: evidence must be one of {', '.join(DECLARABLE)}")

    def wrap(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"loss {name!r} is registered twice")
        cls.name = name
        cls.paper = paper
        cls.evidence = evidence or "reference"
        _REGISTRY[name] = cls
        return cls

    return wrap


@cache
def _load_all() -> None:
    for module in loss_modules():
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


def create(name: str, preset: str | None = None, **kwargs):
    """Instantiate the loss registered as ``name`` at its authors' settings.

    Without arguments the constructor's defaults apply, which are the default preset's; a named
    ``preset`` (``create("dkd", preset="imagenet")``) overrides them; ``kwargs`` win over both.
    """
    cls = get(name)
    return cls(**{**cls.preset(preset).kwargs, **kwargs})
