"""Reference PyTorch implementations of the distillation losses of the catalogue's papers.

Needs the ``losses`` extra (torch). ``get(name)``, ``create(name, **kwargs)`` and ``available()``
work by registry name; every loss class is also importable by its class name
(``from kdsurvey.losses import DKD``). Importing this package alone does not import torch.
"""

from kdsurvey.losses.registry import available, create, get

__all__ = ["available", "create", "get"]


def __getattr__(name: str):
    # Lazy class access keeps ``import kdsurvey.losses`` torch-free until a loss is used. Class
    # names are capitalised; anything else (``from kdsurvey.losses import manifest`` asks for a
    # submodule first) must not load every loss, and torch with them.
    if not name[:1].isupper():
        raise AttributeError(f"module 'kdsurvey.losses' has no attribute {name!r}")
    from kdsurvey.losses.registry import _REGISTRY, _load_all

    _load_all()
    for cls in _REGISTRY.values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module 'kdsurvey.losses' has no attribute {name!r}")
