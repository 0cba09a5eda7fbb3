"""Leaderboards from the reported results: ranking, gains over the same paper's KD, spreads.

One board per benchmark, teacher -> student pair, metric and split (numbers of different splits or
metrics are never ranked together). A board ranks the *proposed* results (each paper's own method);
the baselines a paper reports feed two honest companions of the raw ranking:

* the **gain over KD** that the same paper reports for the pair (its own KD baseline, same metric
  and split): recipes differ between papers, so a method's margin over the KD its own authors ran
  compares better than the raw number;
* the **spread** of the KD baseline (and of teacher and student alone) across papers: min, max,
  count and papers, so a reader sees how far recipes move the same baseline.

Ranking: best first in the metric's direction (higher accuracy, lower error); equal values (as
decimals: ``"76.3" == "76.30"``) share a rank (1, 2, 2, 4), listed oldest paper first.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.model import Paper
from kdsurvey.records.results import Benchmark, Result, Role, architecture_key

SPREAD_OF = ("kd", "teacher", "student")
README_ROWS = 5


@dataclass(frozen=True)
class Entry:
    """A proposed result on a board, with its rank and the gain over its own paper's KD."""

    paper: Paper
    result: Result
    rank: int = 0
    kd: Result | None = None
    gain: Decimal | None = None


@dataclass(frozen=True)
class Spread:
    """One baseline (kd, teacher, student) as different papers report it on a board."""

    baseline: str
    low: Decimal
    high: Decimal
    count: int
    values: tuple[tuple[Paper, Result], ...]

    @property
    def papers(self) -> list[Paper]:
        seen: dict[str, Paper] = {}  # Paper is not hashable: keyed by id, in order
        for p, _ in self.values:
            seen.setdefault(p.id, p)
        return list(seen.values())


@dataclass
class Board:
    benchmark: str
    teacher: str
    student: str
    metric: str
    split: str
    higher: bool
    entries: list[Entry] = field(default_factory=list)
    spreads: list[Spread] = field(default_factory=list)

    @property
    def pair(self) -> tuple[str, str]:
        return self.teacher, self.student

    @property
    def papers(self) -> int:
        return len({e.paper.id for e in self.entries})


def better(a: Decimal, b: Decimal, higher: bool) -> bool:
    return a > b if higher else a < b


def gain(value: Decimal, kd: Decimal, higher: bool) -> Decimal:
    """How much better than KD ``value`` is, in the metric's direction (positive: better)."""
    return value - kd if higher else kd - value


def signed(value: Decimal | None) -> str:
    """``+1.23`` / ``−0.40`` / ``±0.00``; empty for None."""
    if value is None:
        return ""
    if value == 0:
        return f"±{abs(value)}"
    return f"+{value}" if value > 0 else f"−{abs(value)}"


def rank(entries: list[Entry], higher: bool) -> list[Entry]:
    """Best first; ties share the rank (competition ranking) and list the oldest paper first."""
    ordered = sorted(
        entries,
        key=lambda e: (
            -e.result.number if higher else e.result.number,
            e.paper.year,
            e.paper.id,
            e.result.method,
        ),
    )
    ranked, previous, current = [], None, 0
    for position, e in enumerate(ordered, 1):
        if e.result.number != previous:
            current, previous = position, e.result.number
        ranked.append(Entry(e.paper, e.result, current, e.kd, e.gain))
    return ranked


def _own_kd(result: Result, kds: list[Result]) -> Result | None:
    """The paper's KD baseline for a proposed result: the one with the same note when the paper
    reports several (e.g. two recipes), else the only one; None when ambiguous or absent."""
    if len(kds) == 1:
        return kds[0]
    same = [k for k in kds if k.note == result.note]
    return same[0] if len(same) == 1 else None


def boards(catalogue: Catalogue) -> dict[str, list[Board]]:
    """benchmark key -> its boards, in the vocabulary's order: classic pairs first (as listed),
    then the others by number of papers; within a pair, main metric and standard split first."""
    vocab = catalogue.benchmarks
    groups: dict[tuple, list[tuple[Paper, Result]]] = defaultdict(list)
    for p in catalogue.papers:
        for r in p.results:
            groups[(r.benchmark, r.teacher, r.student, r.metric, vocab.split_of(r))].append((p, r))
    out: dict[str, list[Board]] = {}
    for key, bench in vocab.benchmarks.items():
        mine = [(k, v) for k, v in groups.items() if k[0] == key]
        if not mine:
            continue
        made = []
        for (_, teacher, student, metric, split), rows in mine:
            higher = bench.higher_is_better(metric)
            board = Board(key, teacher, student, metric, split, higher)
            kds: dict[str, list[Result]] = defaultdict(list)
            for p, r in rows:
                if r.role == Role.baseline and r.baseline == "kd":
                    kds[p.id].append(r)
            entries = []
            for p, r in rows:
                if r.role != Role.proposed:
                    continue
                kd = _own_kd(r, kds.get(p.id, []))
                entries.append(
                    Entry(p, r, 0, kd, gain(r.number, kd.number, higher) if kd else None)
                )
            board.entries = rank(entries, higher)
            for name in SPREAD_OF:
                values = tuple(
                    sorted(
                        ((p, r) for p, r in rows if r.role == Role.baseline and r.baseline == name),
                        key=lambda pr: (pr[1].number, pr[0].year, pr[0].id),
                    )
                )
                if values:
                    numbers = [r.number for _, r in values]
                    board.spreads.append(
                        Spread(name, min(numbers), max(numbers), len(values), values)
                    )
            made.append(board)
        out[key] = _order(made, bench)
    return out


def _order(made: list[Board], bench: Benchmark) -> list[Board]:
    classic = {tuple(pair): i for i, pair in enumerate(bench.pairs)}
    metrics = list(bench.metrics)
    papers_per_pair: dict[tuple, int] = defaultdict(int)
    for b in made:
        papers_per_pair[b.pair] = max(papers_per_pair[b.pair], b.papers)
    return sorted(
        made,
        key=lambda b: (
            classic.get(b.pair, len(classic)),
            -papers_per_pair[b.pair],
            b.pair,
            b.split != bench.split,
            b.split,
            metrics.index(b.metric),
        ),
    )


def most_used(board_list: list[Board], bench: Benchmark) -> Board | None:
    """The board of the README: the main metric on the standard split, the pair with the most
    papers reporting a proposed result (ties: the classic order)."""
    candidates = [
        b
        for b in board_list
        if b.metric == bench.main_metric and b.split == bench.split and b.entries
    ]
    if not candidates:
        return None
    classic = {tuple(pair): i for i, pair in enumerate(bench.pairs)}
    return min(candidates, key=lambda b: (-b.papers, classic.get(b.pair, len(classic)), b.pair))


def loss_anchor(paper: Paper, method: str) -> str:
    """The loss of ``paper`` a result's method label names (``DKD`` -> ``dkd``), else its main one."""
    wanted = architecture_key(method)
    for name in paper.loss:
        if architecture_key(name.replace("_", "")) == wanted:
            return name
    return paper.loss[0]


def baseline_loss(name: str, papers: dict[str, Paper]) -> tuple[str, str] | None:
    """(paper id, loss name) of the reference loss a baseline names (``kd``, ``dkd``...): the
    earliest catalogue paper listing that loss; None when no paper does."""
    owners = [p for p in papers.values() if name in p.loss]
    if not owners:
        return None
    first = min(owners, key=lambda p: (p.year, p.id))
    return first.id, name


def anchor(*parts: str) -> str:
    """A stable HTML id for a board (``cifar100-resnet32x4-resnet8x4-top1-test``)."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


# -- charts and pages -------------------------------------------------------------------------


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    span = (high - low) or 1.0
    raw = span / count
    step = min((s for s in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20) if s >= raw), default=20)
    first = (low // step) * step
    ticks, value = [], first
    while value <= high + 1e-9:
        if value >= low - 1e-9:
            ticks.append(round(value, 4))
        value += step
    return ticks


def chart(board: Board, width: int = 520, height: int = 210) -> dict | None:
    """Geometry of the proposed results by year (dots) and the best so far (a step line), for
    an inline SVG drawn by the template; None when the board has no proposed result."""
    if not board.entries:
        return None
    left, right, top, bottom = 48, 16, 12, 30
    years = [e.paper.year for e in board.entries]
    y0, y1 = min(years), max(years)
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    values = [float(e.result.number) for e in board.entries]
    kd = [float(r.number) for s in board.spreads if s.baseline == "kd" for _, r in s.values]
    lo, hi = min(values + kd), max(values + kd)
    pad = max((hi - lo) * 0.08, 0.1)
    lo, hi = lo - pad, hi + pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(year: float) -> float:
        return round(left + (year - y0) / (y1 - y0) * plot_w, 2)

    def y(value: float) -> float:
        return round(top + (hi - value) / (hi - lo) * plot_h, 2)

    dots = [
        {
            "x": x(e.paper.year),
            "y": y(float(e.result.number)),
            "title": f"{e.result.method} ({e.paper.id}, {e.paper.year}): {e.result.value}",
        }
        for e in sorted(board.entries, key=lambda e: (e.paper.year, e.paper.id, e.result.method))
    ]
    kd_dots = [
        {"x": x(p.year), "y": y(float(r.number)), "title": f"KD in {p.id}: {r.value}"}
        for s in board.spreads
        if s.baseline == "kd"
        for p, r in s.values
    ]
    best, points = None, []
    for year in range(min(years), max(years) + 1):
        here = [e.result.number for e in board.entries if e.paper.year == year]
        for value in here:
            if best is None or better(value, best, board.higher):
                best = value
        if best is not None:
            points.append(f"{x(year)},{y(float(best))}")
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "dots": dots,
        "kd": kd_dots,
        "best": " ".join(points),
        "yticks": [{"y": y(v), "value": f"{v:g}"} for v in _ticks(lo, hi)],
        "xticks": [
            {"x": x(year), "y": height - bottom + 16, "value": year}
            for year in range(y0, y1 + 1)
            if y1 - y0 <= 12 or (year - y0) % 2 == 0
        ],
        "base": height - bottom,
    }


def page_data(catalogue: Catalogue) -> dict:
    """What the leaderboard pages, paper pages and README show: ``{"benchmarks": [...]}``."""
    vocab = catalogue.benchmarks
    by_id = {p.id: p for p in catalogue.papers}
    out = []
    for key, made in boards(catalogue).items():
        bench = vocab.benchmarks[key]
        out.append(
            {
                "key": key,
                "info": bench,
                "boards": [
                    {
                        "board": b,
                        "id": anchor(key, b.teacher, b.student, b.metric, b.split),
                        "teacher": vocab.label(b.teacher),
                        "student": vocab.label(b.student),
                        "metric": bench.metrics[b.metric].label,
                        "standard_split": b.split == bench.split,
                        "chart": chart(b),
                        "rows": [
                            {
                                "entry": e,
                                "loss": loss_anchor(e.paper, e.result.method),
                                "gain": signed(e.gain),
                            }
                            for e in b.entries
                        ],
                        "spreads": [
                            {
                                "spread": s,
                                "range": signed(s.high - s.low).lstrip("+±"),
                                "loss": baseline_loss(s.baseline, by_id),
                            }
                            for s in b.spreads
                        ],
                    }
                    for b in made
                ],
                "results": sum(
                    1 for p in catalogue.papers for r in p.results if r.benchmark == key
                ),
                "papers": len(
                    {p.id for p in catalogue.papers for r in p.results if r.benchmark == key}
                ),
                "top": most_used(made, bench),
            }
        )
    return {"benchmarks": out}


def paper_rows(catalogue: Catalogue, paper: Paper) -> list[dict]:
    """A paper page's results table, in the order the record lists them."""
    vocab = catalogue.benchmarks
    rows = []
    for r in paper.results:
        bench = vocab.benchmarks.get(r.benchmark)
        split = vocab.split_of(r)
        rows.append(
            {
                "result": r,
                "benchmark": bench.name if bench else r.benchmark,
                "teacher": vocab.label(r.teacher),
                "student": vocab.label(r.student),
                "metric": bench.metrics[r.metric].label if bench else r.metric,
                "split": split,
                "board": anchor(r.benchmark, r.teacher, r.student, r.metric, split),
            }
        )
    return rows


def readme_tables(catalogue: Catalogue, site_url: str) -> list[dict]:
    """Per benchmark with results: the best few proposed results on its most used pair."""
    data = page_data(catalogue)
    vocab = catalogue.benchmarks
    tables = []
    for item in data["benchmarks"]:
        top = item["top"]
        if top is None:
            continue
        bench = item["info"]
        tables.append(
            {
                "key": item["key"],
                "name": bench.name,
                "teacher": vocab.label(top.teacher),
                "student": vocab.label(top.student),
                "metric": bench.metrics[top.metric].label,
                "split": top.split,
                "rows": [{"entry": e, "gain": signed(e.gain)} for e in top.entries[:README_ROWS]],
                "count": len(top.entries),
                "results": item["results"],
                "papers": item["papers"],
                "url": f"{site_url.rstrip('/')}/catalogue/leaderboards/{item['key']}/",
            }
        )
    return tables


def pages(catalogue: Catalogue, env, venues_slugs: dict[str, str] | None = None) -> dict[str, str]:
    """The leaderboard pages: ``leaderboards/index.md`` (always) and one per benchmark."""
    data = page_data(catalogue)
    template = env.get_template("site/leaderboard.md.j2")
    out = {"leaderboards/index.md": template.render(data, kind="index", venues=catalogue.venues)}
    for item in data["benchmarks"]:
        out[f"leaderboards/{item['key']}.md"] = template.render(
            data, kind="benchmark", item=item, venues=catalogue.venues
        )
    return out
