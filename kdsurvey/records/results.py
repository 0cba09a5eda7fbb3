"""Reported results: the numbers a paper prints for the standard benchmarks, and their vocabulary.

A record's ``results:`` list holds one :class:`Result` per number, as printed (``value`` is the
text of the number, ``"76.30"`` keeps its last zero). ``papers/benchmarks.yaml`` says what a result
may name: the benchmarks, their metrics (range and which way is better), their evaluation splits,
the classic teacher -> student pairs, and the architectures with their aliases.

Architecture names are normalised: :func:`architecture_key` is the loose form that spelling
variants share (``ResNet-32x4``, ``resnet_32x4`` and ``resnet32x4`` are all ``resnet32x4``),
and :meth:`Vocabulary.architecture` maps a name, a listed alias, or any variant of either to the
canonical name. Records may use any of them; the loaded catalogue holds canonical names only.

Rules that need the vocabulary (and the located errors they give) are :func:`result_problems`;
:mod:`kdsurvey.records.catalogue` runs them with the other record rules.

``split``: a result is on its benchmark's standard split (``split:`` of the benchmark, e.g. the
CIFAR-100 test set, the Cityscapes val set) unless it names another one (``split: test`` for a
Cityscapes test-server number). Leaderboards never rank numbers of different splits together,
and two results of a paper may differ only by their split.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from kdsurvey.problems import Problem
from kdsurvey.records.reading import BENCHMARKS_FILE, display_path, read_mapping, validate_model
from kdsurvey.records.yamlsource import line_of

DECIMAL_RE = re.compile(r"^-?\d+(\.\d+)?$")
NAME_RE = r"^[a-z0-9][a-z0-9_+.-]*$"
# A table's way of naming the authors' own row: a method label must name the method instead.
PRONOUN_RE = re.compile(r"\b(our|ours|proposed|we|us)\b", re.IGNORECASE)


def _check_line(value: str) -> str:
    if value != value.strip() or "  " in value or "\n" in value:
        raise ValueError("must be one line without leading, trailing or double spaces")
    return value


def _decimal_text(value):
    if isinstance(value, int | float):  # bool is an int too
        written = getattr(value, "written", None) or str(value)  # as the record wrote it
        raise ValueError(
            f'write the number as printed, quoted as a string ("{written}"), so its decimals are '
            "kept"
        )
    return value


def _check_decimal(value: str) -> str:
    if not DECIMAL_RE.match(value):
        raise ValueError(f'{value!r} is not a decimal number as printed (e.g. "76.32")')
    return value


Line = Annotated[str, Field(min_length=1), AfterValidator(_check_line)]
DecimalText = Annotated[
    str,
    BeforeValidator(_decimal_text),
    AfterValidator(_check_decimal),
    WithJsonSchema(
        {"type": "string", "pattern": DECIMAL_RE.pattern, "description": 'as printed: "76.30"'}
    ),
]
Name = Annotated[str, Field(pattern=NAME_RE)]


class Role(str, Enum):
    """Whose number it is: the paper's own method (or a variant of it), or someone else's."""

    proposed = "proposed"
    baseline = "baseline"


class Result(BaseModel):
    """One number a paper reports: ``results[i]`` of a record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    benchmark: Name = Field(description="a key of papers/benchmarks.yaml")
    teacher: Line = Field(description="an architecture of papers/benchmarks.yaml (or an alias)")
    student: Line = Field(description="an architecture of papers/benchmarks.yaml (or an alias)")
    metric: Name = Field(description="a metric of the benchmark, e.g. top1, miou, box_ap")
    split: Name | None = Field(
        default=None, description="evaluation split when not the benchmark's standard one"
    )
    value: DecimalText
    method: Line = Field(
        description="the method's name: the paper's method, with its base where combined "
        "(LSKD (on DKD)); never a pronoun (Ours) or an architecture"
    )
    role: Role
    baseline: Name | None = Field(
        default=None,
        description="with role baseline: whose number (kd, dkd, crd, teacher, student, ...)",
    )
    loss: Name | None = Field(
        default=None,
        description="with role proposed: the loss of the record's `loss` that produced the number, "
        "when the record lists several",
    )
    nonstandard: Line | None = Field(
        default=None,
        description="how the teacher, student or recipe differs from the pair's standard one; "
        "leaderboards rank such results apart",
    )
    source: Line = Field(description="where the number stands: Table 2, official README")
    note: str | None = None
    below_one: bool | None = Field(
        default=None,
        description="true when the paper prints a percentage under 1 (0.78 %), which would "
        "otherwise be refused as a fraction written where a percentage is meant",
    )

    @property
    def number(self) -> Decimal:
        return Decimal(self.value)


# -- the vocabulary: papers/benchmarks.yaml ---------------------------------------------------


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Line = Field(description="shown in tables, e.g. Top-1 (%)")
    better: Literal["higher", "lower"] = Field(description="accuracy: higher; error: lower")
    error_of: str | None = Field(
        default=None,
        description="the accuracy metric this error is 100 minus (top1_err: top1): leaderboards "
        "show the accuracy, with the printed error in the note",
    )
    min: float = 0
    max: float = 100


class Benchmark(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Line
    task: Line
    split: Name = Field(description="the split results are on unless they name another")
    splits: list[Name] = Field(default_factory=list, description="other splits results may name")
    metrics: dict[str, Metric] = Field(min_length=1, description="the first is the main one")
    pairs: list[tuple[str, str]] = Field(
        default_factory=list, description="the classic teacher -> student pairs, in reading order"
    )

    @property
    def main_metric(self) -> str:
        return next(iter(self.metrics))

    def higher_is_better(self, metric: str) -> bool:
        return self.metrics[metric].better == "higher"


class Architecture(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Line = Field(description="as tables print it, e.g. ResNet-32x4")
    aliases: list[str] = Field(default_factory=list)


class Vocabulary:
    """The benchmarks and architectures a catalogue's results may name."""

    def __init__(self, benchmarks=None, architectures=None):
        self.benchmarks: dict[str, Benchmark] = dict(benchmarks or {})
        self.architectures: dict[str, Architecture] = dict(architectures or {})
        self._lookup: dict[str, str] = {}
        self.collisions: list[tuple[str, str, str]] = []  # (name, canonical, other canonical)
        for key, arch in self.architectures.items():
            for name in (key, *arch.aliases):
                loose = architecture_key(name)
                other = self._lookup.setdefault(loose, key)
                if other != key:
                    self.collisions.append((name, key, other))

    def architecture(self, name) -> str | None:
        """The canonical name of an architecture name, alias or spelling variant; None if unknown."""
        if not isinstance(name, str):
            return None
        return self._lookup.get(architecture_key(name))

    def label(self, name: str) -> str:
        arch = self.architectures.get(name)
        return arch.label if arch else name

    def split_of(self, result: Result) -> str:
        """The split a result is on (its own, or its benchmark's standard one)."""
        if result.split:
            return result.split
        bench = self.benchmarks.get(result.benchmark)
        return bench.split if bench else ""

    def normalised(self, result: Result) -> Result:
        """``result`` with canonical architecture names."""
        teacher = self.architecture(result.teacher) or result.teacher
        student = self.architecture(result.student) or result.student
        if (teacher, student) == (result.teacher, result.student):
            return result
        return result.model_copy(update={"teacher": teacher, "student": student})


def architecture_key(name: str) -> str:
    """The loose form of an architecture name that its spelling variants share: lowercase,
    letters, digits, dots and plus signs only (``WRN_40_2``, ``wrn-40-2`` -> ``wrn402``;
    ``MobileNet-V2`` -> ``mobilenetv2``; ``ResNet-20 x0.5`` -> ``resnet20x0.5``)."""
    return re.sub(r"[^a-z0-9.+]", "", str(name).lower())


def normalise_architecture(name: str, vocabulary: Vocabulary) -> str | None:
    """The canonical name of ``name`` in ``vocabulary`` (None when it names no architecture)."""
    return vocabulary.architecture(name)


def load_vocabulary(root: Path, problems: list) -> Vocabulary:
    """``root/benchmarks.yaml`` (an empty vocabulary when the catalogue has none)."""

    path = root / BENCHMARKS_FILE
    if not path.exists():
        return Vocabulary()
    shown = display_path(path)
    data = read_mapping(path, shown, problems) or {}
    tables = {}
    for section, model in (("benchmarks", Benchmark), ("architectures", Architecture)):
        raw = data.get(section)
        table = {}
        if not isinstance(raw, dict):
            problems.append(
                Problem(
                    shown, line_of(data, (section,)), section, "must be a mapping of key: {fields}"
                )
            )
            raw = {}
        for key, value in raw.items():
            if not isinstance(value, dict):
                problems.append(
                    Problem(
                        shown,
                        line_of(data, (section, key)),
                        f"{section}.{key}",
                        "must be a mapping",
                    )
                )
                continue
            item = validate_model(model, value, shown, problems, prefix=(section, key))
            if item is not None:
                table[key] = item
        tables[section] = table
    for key in set(data) - {"benchmarks", "architectures"}:
        problems.append(Problem(shown, line_of(data, (key,)), str(key), "unknown section"))
    vocab = Vocabulary(tables["benchmarks"], tables["architectures"])
    for name, key, other in vocab.collisions:
        problems.append(
            Problem(
                shown,
                line_of(data, ("architectures", key)),
                f"architectures.{key}",
                f"{name!r} also names {other!r}",
            )
        )
    for key, bench in vocab.benchmarks.items():
        for name, metric in bench.metrics.items():
            accuracy = bench.metrics.get(metric.error_of) if metric.error_of else None
            if metric.error_of and (
                accuracy is None or accuracy.better != "higher" or metric.better != "lower"
            ):
                problems.append(
                    Problem(
                        shown,
                        line_of(data, ("benchmarks", key, "metrics", name)),
                        f"benchmarks.{key}.metrics.{name}.error_of",
                        "must name a metric of the benchmark where higher is better, from a "
                        "metric where lower is better",
                    )
                )
        for index, pair in enumerate(bench.pairs):
            for name in pair:
                if vocab.architecture(name) != name:
                    problems.append(
                        Problem(
                            shown,
                            line_of(data, ("benchmarks", key, "pairs", index)),
                            f"benchmarks.{key}.pairs[{index}]",
                            f"{name!r} is not the canonical name of an architecture",
                        )
                    )
    return vocab


def _decimal(value) -> Decimal | None:
    if isinstance(value, str) and DECIMAL_RE.match(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            return None
    return None


def _format_range(metric: Metric) -> str:
    def fmt(x: float) -> str:
        return f"{x:g}"

    return f"{fmt(metric.min)}–{fmt(metric.max)}"


def result_problems(data: dict, shown: str, vocabulary: Vocabulary | None):
    """The rules of ``results:`` that need the vocabulary, on raw record data:
    ``(loc, message)`` pairs, located by the caller. Known benchmark, metric of that benchmark,
    split of that benchmark, known architectures, value inside the metric's range, a method label
    that names a method (no pronoun; a proposed one no architecture), ``loss`` one of the record's
    and only on a proposed result, ``baseline`` exactly when the role is baseline, and no two
    results of the same benchmark, pair, method, metric and split."""
    results = data.get("results")
    if not isinstance(results, list):
        return
    vocabulary = vocabulary or Vocabulary()
    seen: dict[tuple, int] = {}
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            continue
        bench_key = r.get("benchmark")
        bench = vocabulary.benchmarks.get(bench_key) if isinstance(bench_key, str) else None
        if isinstance(bench_key, str) and bench is None:
            known = ", ".join(vocabulary.benchmarks) or "none: the catalogue has no benchmarks.yaml"
            yield ("results", i, "benchmark"), f"unknown benchmark {bench_key!r} (known: {known})"
        metric = None
        if bench is not None and isinstance(r.get("metric"), str):
            metric = bench.metrics.get(r["metric"])
            if metric is None:
                yield (
                    ("results", i, "metric"),
                    f"{bench_key} has no metric {r['metric']!r} (known: {', '.join(bench.metrics)})",
                )
        split = r.get("split")
        if (
            bench is not None
            and isinstance(split, str)
            and split not in (bench.split, *bench.splits)
        ):
            yield (
                ("results", i, "split"),
                f"{bench_key} has no split {split!r} (known: {', '.join([bench.split, *bench.splits])})",
            )
        names = {}
        for role in ("teacher", "student"):
            name = r.get(role)
            if isinstance(name, str):
                names[role] = vocabulary.architecture(name)
                if names[role] is None:
                    yield (
                        ("results", i, role),
                        f"unknown architecture {name!r} (add it, or an alias, to benchmarks.yaml)",
                    )
        number = _decimal(r.get("value"))
        if metric is not None and number is not None and not metric.min <= number <= metric.max:
            yield (
                ("results", i, "value"),
                f"{r['value']} is outside the range of {r['metric']} ({_format_range(metric)})",
            )
        elif (
            metric is not None
            and metric.max == 100
            and number is not None
            and 0 < number < 1
            and r.get("below_one") is not True
        ):
            percent = format((number * 100).normalize(), "f")
            yield (
                ("results", i, "value"),
                f"{r['value']} looks like a fraction, but {r['metric']} is a percentage: write "
                f'"{percent}", or add `below_one: true` if the paper prints {r["value"]} %',
            )
        role, baseline = r.get("role"), r.get("baseline")
        method = r.get("method")
        if isinstance(method, str) and (pronoun := PRONOUN_RE.search(method)):
            yield (
                ("results", i, "method"),
                f"{method!r} says {pronoun.group(0)!r}: name the method (the paper's method, with "
                "its base where combined: LSKD (on DKD))",
            )
        elif role == "proposed" and isinstance(method, str) and vocabulary.architecture(method):
            yield (
                ("results", i, "method"),
                f"{method!r} is an architecture: name the method (the network goes in teacher "
                "and student)",
            )
        loss, losses = r.get("loss"), data.get("loss")
        losses = [losses] if isinstance(losses, str) else losses
        if loss is not None and role != "proposed":
            yield ("results", i, "loss"), "only a result with role proposed names its loss"
        elif isinstance(loss, str) and isinstance(losses, list) and loss not in losses:
            yield (
                ("results", i, "loss"),
                f"{loss!r} is not a loss of this record (loss: {', '.join(map(str, losses))})",
            )
        if role == "baseline" and baseline is None:
            yield (
                ("results", i, "role"),
                "a baseline result must name it in `baseline:` (kd, teacher, ...)",
            )
        elif role == "proposed" and baseline is not None:
            yield ("results", i, "baseline"), "only a result with role baseline names a baseline"
        key = (
            bench_key,
            names.get("teacher") or r.get("teacher"),
            names.get("student") or r.get("student"),
            r.get("method"),
            r.get("metric"),
            split if isinstance(split, str) else (bench.split if bench else None),
        )
        if all(isinstance(k, str) for k in key):
            first = seen.setdefault(key, i)
            if first != i:
                yield (
                    ("results", i),
                    f"same benchmark, teacher, student, method, metric and split as results[{first}]"
                    " (a different split? name it in `split:`)",
                )
