"""The loss manifest: what the catalogue, README and site know about every loss, in one file.

``manifest.json`` (committed beside this module) is generated from the registry, the class
docstrings (Google style, parsed with ``docstring_parser``) and the reference case files, so no
fact is written twice and nothing outside this package parses loss source. :func:`generate` imports
torch; :func:`load`, :func:`names` and :func:`entry` do not. A test keeps the file fresh
(``kdsurvey losses manifest --check`` runs :func:`check`).

``presets`` are the authors' training settings (:class:`kdsurvey.losses.base.Preset`), the
default first; its values are the hyperparameters' defaults.

``example`` is what the loss page's usage block builds, described so that the page generator stays
torch-free: each input of ``example_inputs()`` (kind, shape, dtype, the range of its values) and
the constructor arguments it needs (``example_kwargs()``).

``learned`` is decided by building the loss with every size parameter it has
(``student_channels``, ``teacher_channels``, ``num_classes``...): true when that instance owns
trainable parameters, i.e. when it brings its own adapter or simplifier.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from kdsurvey.losses.registry import PACKAGE

DEFAULT = PACKAGE / "manifest.json"
FORMAT = 1
ROOT = PACKAGE.parent.parent
CASES = ROOT / "tests" / "fixtures" / "official_cases"
# Size parameters and the values ``learned`` builds a loss with (one layer, or two for lists).
_SIZES = {
    "student_channels": 8,
    "channels": 8,
    "teacher_channels": 16,
    "num_classes": 10,
    "teacher_dim": 16,
    "stage_sizes": 16,
    "student_sizes": 4,
    "teacher_sizes": 4,
}
EXAMPLE_BATCH = 4
# Draws of ``example_inputs`` whose values are pooled to find each input's range (class ids...).
_DRAWS = 16
# Labels that mean "ignored": the segmentation maps' 255 and Hugging Face's -100.
IGNORE_LABELS = (255, -100)
_MATH = re.compile(r"^\.\. math::[ \t]*(.*(?:\n(?:[ \t]+.*|[ \t]*)(?=\n|$))*)", re.M)
_SHAPE = re.compile(r"^((?:list of )?\([^)]*\))\s*(.*)$", re.S)


def _markdown(text: str) -> str:
    """Inline reStructuredText of the docstrings as Markdown: code, math and cross references."""
    text = re.sub(r":math:`([^`]*)`", r"$\1$", text)
    text = re.sub(r":(?:class|meth|func|data|mod):`~?([^`]*)`", r"`\1`", text)
    return re.sub(r"``([^`]*)``", r"`\1`", text)


def _oneline(text: str) -> str:
    return " ".join(_markdown(text or "").split())


def _parse(doc: str):
    from docstring_parser.google import DEFAULT_SECTIONS, GoogleParser, Section, SectionType

    # Google style, plus the Notes section that holds each loss's implementation notes.
    sections = [*DEFAULT_SECTIONS, Section("Notes", "notes", SectionType.SINGULAR)]
    return GoogleParser(sections).parse(inspect.cleandoc(doc))


def _split_math(text: str) -> tuple[str, list[str]]:
    """Prose paragraphs (math blocks removed) and each ``.. math::`` block's formula."""
    math = [inspect.cleandoc(m.group(1)) for m in _MATH.finditer(text)]
    prose = _MATH.sub("", text)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", prose) if p.strip()]
    return "\n\n".join(_markdown(p) for p in paragraphs), [" ".join(m.split()) for m in math]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, list)):
        return value
    return repr(value)


def _role(name: str) -> str:
    if name.endswith("_student"):
        return "student"
    if name.endswith("_teacher"):
        return "teacher"
    return "target" if name == "target" else "other"


def _learned(cls) -> bool:
    params = inspect.signature(cls.__init__).parameters
    sizes = {k: v for k, v in _SIZES.items() if k in params}
    if not sizes:
        return False
    try:
        loss = cls(**sizes)
    except (TypeError, ValueError):
        scalar = ("num_classes", "teacher_dim")
        loss = cls(**{k: v if k in scalar else [v, v] for k, v in sizes.items()})
    return any(p.requires_grad for p in loss.parameters())


def _values(draws: list) -> dict:
    """How a tensor input's values look over several draws: the kind of random fill that gives
    values of the same sort (class ids with their range and ignore label, probabilities...)."""
    import torch

    t = torch.cat([d.detach().flatten().double() for d in draws])
    first = draws[0]
    if first.dtype == torch.bool:
        return {}
    if not first.is_floating_point():
        values = set(t.long().tolist())
        ignore = next((v for v in IGNORE_LABELS if v in values), None)
        kept = sorted(values - {ignore}) or [0]
        out = {"low": min(kept), "high": max(kept) + 1}
        return {**out, "ignore": ignore} if ignore is not None else out
    if t.numel() and t.abs().max() == 0:
        return {"fill": "zeros"}
    if (
        t.numel()
        and t.min() >= 0
        and first.dim()
        and all(
            torch.allclose(d.double().sum(-1), torch.ones((), dtype=torch.float64)) for d in draws
        )
    ):
        return {"fill": "probabilities"}
    if t.numel() and t.min() > 0:
        return {"fill": "positive"}
    if t.numel() and t.max() <= 0:
        return {"fill": "nonpositive"}
    return {"fill": "normal"}


def _describe(where: str, draws: list) -> dict:
    """One example input (``draws``: its value in each draw) as data the page can render."""
    import torch

    first = draws[0]
    if isinstance(first, torch.Tensor):
        if any(tuple(d.shape) != tuple(first.shape) for d in draws):
            raise ValueError(f"{where}: its shape changes from draw to draw")
        dtype = str(first.dtype).removeprefix("torch.")
        out = {"kind": "tensor", "shape": list(first.shape), "dtype": dtype, **_values(draws)}
        if first.grad is not None and bool(first.grad.abs().sum() > 0):
            out["grad"] = True  # the loss's gradient reaches it: a student output
        return out
    if isinstance(first, (list, tuple)):
        return {
            "kind": type(first).__name__ if type(first) in (list, tuple) else "list",
            "items": [_describe(f"{where}[{i}]", [d[i] for d in draws]) for i in range(len(first))],
        }
    if isinstance(first, dict):
        return {
            "kind": "dict",
            "items": {k: _describe(f"{where}[{k!r}]", [d[k] for d in draws]) for k in first},
        }
    if first is None or isinstance(first, (bool, int, float, str)):
        return {"kind": "value", "value": first}
    source = _module_source(first) if isinstance(first, torch.nn.Module) else None
    if source:
        return {"kind": "module", "source": source}
    path = _import_path(first) if inspect.isroutine(first) else None
    if path:
        return {"kind": "callable", "module": path[0], "function": path[1]}
    raise TypeError(
        f"{where}: a {type(first).__name__} cannot be written in the usage example; give a "
        "tensor, a list, tuple or dict of them, a plain value, a torch.nn layer (or a Sequential "
        "of them) or an importable function"
    )


def _import_path(function) -> tuple[str, str] | None:
    """``(module, name)`` under which ``function`` itself is found (``torch.sigmoid``, not its
    qualified name inside a private class); None for a lambda or a local function."""
    import importlib

    module = getattr(function, "__module__", None)
    for name in (getattr(function, "__qualname__", ""), getattr(function, "__name__", "")):
        found = importlib.import_module(module) if module and name and "<" not in name else None
        for part in name.split(".") if found is not None else ():
            found = getattr(found, part, None)
        if found is function:
            return module, name
    return None


def _module_source(module) -> str | None:
    """Python source that builds a ``torch.nn`` layer of the same type and parameter shapes (its
    repr, checked by building it), or a ``Sequential`` of such layers; None for any other."""
    import torch

    if type(module) is torch.nn.Sequential:
        parts = [_module_source(m) for m in module]
        return f"torch.nn.Sequential({', '.join(parts)})" if all(parts) else None
    if not type(module).__module__.startswith("torch.nn."):
        return None
    source = f"torch.nn.{module!r}"
    try:
        rebuilt = eval(source, {"torch": torch})  # noqa: S307 - a torch.nn layer's own repr
    except Exception:  # noqa: BLE001 - a repr that is not Python: not writable
        return None
    shapes = [p.shape for p in module.parameters()]
    same = type(rebuilt) is type(module) and [p.shape for p in rebuilt.parameters()] == shapes
    return source if same else None


def _example(cls) -> dict:
    """The usage block's recipe: ``example_inputs`` described input by input (marking the
    student inputs the gradient reaches, found by one backward pass), and ``example_kwargs``."""
    import torch

    draws = [
        cls.example_inputs(batch=EXAMPLE_BATCH, generator=torch.Generator().manual_seed(seed))
        for seed in range(_DRAWS)
    ]
    kwargs = cls.example_kwargs()
    first = draws[0]
    for key, value in first.items():
        for t in value if isinstance(value, (list, tuple)) else [value]:
            if key.endswith("_student") and isinstance(t, torch.Tensor) and t.is_floating_point():
                t.requires_grad_(True)
    torch.manual_seed(0)
    cls(**kwargs)(**first).backward()
    where = f"{cls.__name__}.example_inputs()"
    inputs = [
        {"name": key, **_describe(f"{where}[{key!r}]", [d[key] for d in draws])} for key in first
    ]
    return {"inputs": inputs, "kwargs": {k: _jsonable(v) for k, v in kwargs.items()}}


def _reference(name: str) -> dict | None:
    path = CASES / f"{name}.json"
    if not path.is_file():
        return None
    case = json.loads(path.read_text(encoding="utf-8"))
    source = case["source"]
    return {
        "cases": path.relative_to(ROOT).as_posix(),
        "count": len(case["cases"]),
        **{k: source.get(k) for k in ("repo", "path", "commit", "function")},
        # the other repositories whose code the cases were also run against
        "cross_checked": sorted({c["repo"] for c in source.get("cross_checked_against") or ()}),
    }


def _entry(name: str) -> dict:
    from kdsurvey.losses.registry import get

    cls = get(name)
    doc = _parse(cls.__doc__)
    summary, rest = doc.short_description or "", doc.long_description or ""
    if rest and not doc.blank_after_short_description:
        # The parser's short description is the first line only; the summary is the paragraph.
        first, _, rest = rest.partition("\n\n")
        summary = f"{summary} {first}"
    description, math = _split_math(rest)
    notes = next((m.description for m in doc.meta if m.args == ["notes"]), "") or ""
    meanings = {p.arg_name: p.description for p in doc.params}
    hyper = [
        {
            "name": p.name,
            "type": p.annotation if isinstance(p.annotation, str) else None,
            "default": _jsonable(p.default),
            "meaning": _oneline(meanings.get(p.name, "")),
        }
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
    ]
    forward = inspect.signature(cls.forward).parameters
    inputs = []
    for p in _parse(cls.forward.__doc__ or "").params:
        text = " ".join((p.description or "").split())
        shape, meaning = _SHAPE.match(text).groups() if _SHAPE.match(text) else (None, text)
        inputs.append(
            {
                "name": p.arg_name,
                "role": _role(p.arg_name),
                "shape": shape,
                "optional": p.arg_name in forward
                and forward[p.arg_name].default is not inspect.Parameter.empty,
                "meaning": _markdown(meaning.rstrip(".")),
            }
        )
    _, line = inspect.getsourcelines(cls)
    presets = [
        {
            "name": key,
            "default": i == 0,
            "kwargs": {k: _jsonable(v) for k, v in preset.kwargs.items()},
            "task_weight": preset.task_weight,
            "warmup_epochs": preset.warmup_epochs,
            "source": _oneline(preset.source),
            "note": _oneline(preset.note),
        }
        for i, (key, preset) in enumerate(cls.presets.items())
    ]
    return {
        "name": name,
        "class": cls.__name__,
        "module": Path(inspect.getsourcefile(cls)).relative_to(ROOT).as_posix(),
        "line": line,
        "paper": cls.paper,
        "evidence": cls.evidence,
        "reference": _reference(name),
        "summary": _oneline(summary),
        "description": description,
        "math": math,
        "inputs": inputs,
        "hyperparameters": hyper,
        "notes": "\n\n".join(_oneline(p) for p in re.split(r"\n\s*\n", notes) if p.strip()),
        "learned": _learned(cls),
        "example": _example(cls),
        "presets": presets,
    }


def generate() -> dict:
    """The manifest of every registered loss (imports torch)."""
    from kdsurvey.losses.registry import available

    return {"format": FORMAT, "losses": [_entry(name) for name in available()]}


def render(manifest: dict) -> str:
    """Stable JSON text: sorted keys, indent 2, trailing newline."""
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(path: Path = DEFAULT) -> None:
    """Regenerate the manifest into ``path``."""
    Path(path).write_text(render(generate()), encoding="utf-8")


def check(path: Path = DEFAULT) -> str | None:
    """``None`` when ``path`` equals a fresh manifest, else a unified diff (stored -> fresh)."""
    fresh = render(generate())
    stored = Path(path).read_text(encoding="utf-8") if Path(path).is_file() else ""
    if stored == fresh:
        return None
    diff = difflib.unified_diff(
        stored.splitlines(keepends=True), fresh.splitlines(keepends=True), str(path), "generated"
    )
    return "".join(diff)


@cache
def _loaded(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def load(path: Path = DEFAULT) -> dict:
    """The committed manifest (torch-free, cached)."""
    return _loaded(Path(path))


def names(path: Path = DEFAULT) -> set[str]:
    """Every loss name of the manifest (validates the ``loss`` field of paper records)."""
    return {loss["name"] for loss in load(path)["losses"]}


def entry(name: str, path: Path = DEFAULT) -> dict | None:
    """The manifest entry of loss ``name``, or ``None`` when there is no such loss."""
    return next((loss for loss in load(path)["losses"] if loss["name"] == name), None)
