"""What the README and the site say about a loss, read from the losses' manifest (torch-free).

``kdsurvey/losses/manifest.json`` is the one source of truth for the facts about a loss: its class,
module and line, how far it is proven, its inputs and hyperparameters with their meanings, and its
implementation notes. Nothing here reads or imports a loss module, so catalogue, README and site
never need torch. A loss's family is the category of the paper record it cites.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from kdsurvey.losses import manifest
from kdsurvey.losses.evidence import LEVELS as EVIDENCE  # level -> one-sentence description
from kdsurvey.records.catalogue import Catalogue

__all__ = ["EVIDENCE", "LossFacts", "Param", "PresetFacts", "facts", "loss_facts", "source"]


@dataclass(frozen=True)
class Param:
    """A hyperparameter: keyword argument of the loss's constructor."""

    name: str
    annotation: str  # its type, as written in the manifest ("float", "str | None", ...)
    default: str | None  # Python source of the default; None when it is required
    doc: str  # its meaning (one line)


@dataclass(frozen=True)
class PresetFacts:
    """One of the authors' training settings (``kdsurvey.losses.base.Preset``), for the pages."""

    name: str
    default: bool
    kwargs: tuple[tuple[str, str], ...]  # (hyperparameter, Python source of its value)
    task_weight: float
    warmup_epochs: int
    source: str
    note: str


@dataclass(frozen=True)
class LossFacts:
    """One manifest entry, shaped for the templates."""

    name: str
    cls: str
    module: str  # repository path of the module, kdsurvey/losses/<name>.py
    line: int  # of the class in that module
    paper: str  # the id of the paper record it implements
    evidence: str  # a key of EVIDENCE
    params: tuple[Param, ...]
    inputs: tuple[str, ...]  # forward() arguments a call must pass, in order
    summary: str
    notes: str  # implementation notes (Markdown): what was checked against what, or inferred
    reference: dict | None  # the stored cases and the official code they came from
    family: str | None = None  # the category of the paper record, when the catalogue has it
    description: str = ""  # what it computes (Markdown, $inline math$)
    math: tuple[str, ...] = ()  # its defining formulas (LaTeX, one per display block)
    presets: tuple[PresetFacts, ...] = ()  # the authors' training settings, the default first
    shapes: dict[str, str] = field(
        default_factory=dict
    )  # forward() argument -> its shape, "(B, C)"
    example: dict | None = None  # what the usage block builds (the manifest's ``example``)


def _literal(value) -> str:
    """A JSON default as the Python source a reader would type."""
    if isinstance(value, list):
        return "(" + ", ".join(map(_literal, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


@lru_cache(maxsize=512)
def facts(name: str) -> LossFacts | None:
    """The manifest's facts about loss ``name``; None for a name the manifest lacks."""
    entry = manifest.entry(name)
    if entry is None:
        return None
    params = tuple(
        Param(
            name=h["name"],
            annotation=h.get("type") or "",
            default=None if h.get("required") or "default" not in h else _literal(h["default"]),
            doc=h.get("meaning") or "",
        )
        for h in entry.get("hyperparameters", ())
    )
    return LossFacts(
        name=entry["name"],
        cls=entry["class"],
        module=entry["module"],
        line=int(entry["line"]),
        paper=entry.get("paper", ""),
        evidence=entry["evidence"],
        params=params,
        inputs=tuple(i["name"] for i in entry.get("inputs", ()) if not i.get("optional")),
        summary=entry.get("summary") or "",
        notes=(entry.get("notes") or "").strip(),
        reference=entry.get("reference"),
        description=(entry.get("description") or "").strip(),
        math=tuple(entry.get("math") or ()),
        shapes={i["name"]: i["shape"] for i in entry.get("inputs", ()) if i.get("shape")},
        example=entry.get("example"),
        presets=tuple(
            PresetFacts(
                name=p["name"],
                default=bool(p["default"]),
                kwargs=tuple((k, _literal(v)) for k, v in sorted(p["kwargs"].items())),
                task_weight=float(p["task_weight"]),
                warmup_epochs=int(p["warmup_epochs"]),
                source=p["source"],
                note=p.get("note") or "",
            )
            for p in entry.get("presets", ())
        ),
    )


def loss_facts(catalogue: Catalogue) -> dict[str, LossFacts | None]:
    """Every loss the catalogue's papers name -> its facts, with the family joined on ``paper``."""
    category = {p.id: p.category.value for p in catalogue.papers}
    found: dict[str, LossFacts | None] = {}
    for p in catalogue.papers:
        for name in p.loss:
            if name not in found:
                info = facts(name)
                if info is not None:
                    info = replace(info, family=category.get(info.paper))
                found[name] = info
    return found


def source(name: str) -> str | None:
    """Repository path of the module implementing loss ``name``."""
    info = facts(name)
    return info.module if info else None
