"""Leaderboards from the reported results: ranking, gains over the same paper's KD, spreads.

One board per benchmark, teacher -> student pair and split (numbers of different splits are never
ranked together). Its columns are the benchmark's metrics the results report, the main one first,
side by side (top-1 beside top-5); a printed error (``top1_err``) is shown as the accuracy it is
100 minus (``error_of`` in benchmarks.yaml), the printed form kept for the row's note. A board
ranks the *proposed* results (each paper's own method), one row per method of a paper, by the
board's first column; the baselines a paper reports feed two honest companions of the ranking:

* the **gain over KD** that the same paper reports for the pair (its own KD baseline, same metric
  and split): recipes differ between papers, so a method's margin over the KD its own authors ran
  compares better than the raw number;
* the **spread** of the KD baseline (and of teacher and student alone) across papers: min, max,
  count and papers, so a reader sees how far recipes move the same baseline.

A result whose teacher, student or recipe differs from the pair's standard (``nonstandard:``) is
ranked apart, in its own list under the board, and left out of the spreads: a stronger teacher
must not top the main ranking.

Ranking: best first in the metric's direction; equal values (as decimals: ``"76.3" == "76.30"``)
share a rank (1, 2, 2, 4), listed oldest paper first. A row without the ranking column (a paper
that prints only top-5) is listed after the ranked ones, without a rank.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.model import Paper
from kdsurvey.records.results import Benchmark, Result, Role

SPREAD_OF = ("kd", "teacher", "student")
README_ROWS = 5
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Cell:
    """One number of a board, in its column's metric: the accuracy an error is 100 minus, or
    the printed number itself."""

    result: Result
    metric: str  # the column: the result's metric, or the accuracy its error stands for
    number: Decimal
    printed_as: str = ""  # how the paper printed it, when converted: "Top-1 error 30.09%"

    @property
    def text(self) -> str:
        return str(self.number)


def cell(result: Result, bench: Benchmark) -> Cell:
    """``result`` in its board column: an error metric becomes its accuracy (``100 - value``)."""
    metric = bench.metrics.get(result.metric)
    if metric is not None and metric.error_of:
        label, percent = metric.label.removesuffix(" (%)"), metric.label.endswith("(%)")
        printed = f"{label} {result.value}{'%' if percent else ''}"
        return Cell(result, metric.error_of, HUNDRED - result.number, printed)
    return Cell(result, result.metric, result.number)


@dataclass(frozen=True)
class Entry:
    """A row of a board: one proposed method of a paper, its numbers side by side, its rank and
    the gain over its own paper's KD in the ranking column."""

    paper: Paper
    cells: dict[str, Cell]
    rank: int | None = 0
    kd: Cell | None = None
    gain: Decimal | None = None

    @property
    def first(self) -> Cell:
        return next(iter(self.cells.values()))

    @property
    def result(self) -> Result:
        """The result of the row's first column (the ranking one when the paper reports it)."""
        return self.first.result

    @property
    def method(self) -> str:
        return self.result.method

    @property
    def nonstandard(self) -> str | None:
        return next(
            (c.result.nonstandard for c in self.cells.values() if c.result.nonstandard), None
        )

    @property
    def loss(self) -> str | None:
        """The loss that produced the row's numbers: the result's ``loss``, else the record's only
        one; None when the record lists several and the result names none (no loss of the
        catalogue produced it, e.g. a combination no loss implements)."""
        if self.result.loss:
            return self.result.loss
        return self.paper.loss[0] if len(self.paper.loss) == 1 else None

    @property
    def notes(self) -> list[str]:
        """What a reader must know about the row, once each: the results' notes, and the form
        the paper printed a converted number in."""
        out: list[str] = []
        for c in self.cells.values():
            for text in (c.result.note, f"printed as {c.printed_as}" if c.printed_as else ""):
                if text and text not in out:
                    out.append(text)
        return out

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(c.result.source for c in self.cells.values()))


@dataclass(frozen=True)
class Spread:
    """One baseline (kd, teacher, student) as different papers report it on a board."""

    baseline: str
    low: Decimal
    high: Decimal
    count: int
    values: tuple[tuple[Paper, Cell], ...]

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
    split: str
    metrics: list[str]  # the columns, the ranking one first
    higher: bool  # direction of the ranking column
    entries: list[Entry] = field(default_factory=list)  # the pair's standard setting, ranked
    apart: list[Entry] = field(default_factory=list)  # nonstandard results, ranked apart
    spreads: list[Spread] = field(default_factory=list)

    @property
    def metric(self) -> str:
        """The ranking column."""
        return self.metrics[0]

    @property
    def pair(self) -> tuple[str, str]:
        return self.teacher, self.student

    @property
    def papers(self) -> int:
        return len({e.paper.id for e in self.entries + self.apart})


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


def rank(entries: list[Entry], higher: bool, metric: str) -> list[Entry]:
    """Best first by ``metric``; ties share the rank (competition ranking) and list the oldest
    paper first; rows without ``metric`` follow, unranked, oldest first."""

    def value(e: Entry) -> Decimal:
        number = e.cells[metric].number
        return -number if higher else number

    ranked_ = sorted(
        (e for e in entries if metric in e.cells),
        key=lambda e: (value(e), e.paper.year, e.paper.id, e.method),
    )
    rest = sorted(
        (e for e in entries if metric not in e.cells),
        key=lambda e: (e.paper.year, e.paper.id, e.method),
    )
    out, previous, current = [], None, 0
    for position, e in enumerate(ranked_, 1):
        number = e.cells[metric].number
        if number != previous:
            current, previous = position, number
        out.append(Entry(e.paper, e.cells, current, e.kd, e.gain))
    return out + [Entry(e.paper, e.cells, None, e.kd, e.gain) for e in rest]


def _own_kd(entry: Entry, metric: str, kds: list[Cell]) -> Cell | None:
    """The paper's KD baseline for a row, in the ranking column: of those in the same setting
    (both standard, or the same ``nonstandard``), the only one, or the one with the row's note
    when the paper reports several (e.g. two recipes); None when ambiguous or absent."""
    mine = entry.cells.get(metric)
    if mine is None:
        return None
    same = [k for k in kds if k.result.nonstandard == mine.result.nonstandard]
    if len(same) == 1:
        return same[0]
    noted = [k for k in same if k.result.note == mine.result.note]
    return noted[0] if len(noted) == 1 else None


def _columns(bench: Benchmark, metrics: set[str]) -> list[str]:
    order = list(bench.metrics)
    return sorted(metrics, key=order.index)


def _board(key: str, bench: Benchmark, pair_split: tuple, rows: list[tuple[Paper, Result]]):
    teacher, student, split = pair_split
    cells = [(p, cell(r, bench)) for p, r in rows]
    columns = _columns(bench, {c.metric for _, c in cells})
    proposed_columns = _columns(
        bench, {c.metric for _, c in cells if c.result.role == Role.proposed}
    )
    metric = (proposed_columns or columns)[0]
    metrics = [metric] + [m for m in columns if m != metric]
    higher = bench.higher_is_better(metric)
    board = Board(key, teacher, student, split, metrics, higher)

    grouped: dict[tuple[str, str], dict[str, Cell]] = defaultdict(dict)
    papers: dict[str, Paper] = {}
    for p, c in cells:
        if c.result.role != Role.proposed:
            continue
        papers[p.id] = p
        row = grouped[(p.id, c.result.method)]
        if c.metric not in row or not c.printed_as:  # the printed accuracy over a conversion
            row[c.metric] = c
    kds: dict[str, list[Cell]] = defaultdict(list)
    for p, c in cells:
        if c.result.role == Role.baseline and c.result.baseline == "kd" and c.metric == metric:
            kds[p.id].append(c)
    standard, apart = [], []
    for (pid, _), row in grouped.items():
        ordered = {m: row[m] for m in metrics if m in row}
        entry = Entry(papers[pid], ordered)
        kd = _own_kd(entry, metric, kds.get(pid, []))
        if kd is not None:
            entry = Entry(
                entry.paper, ordered, 0, kd, gain(ordered[metric].number, kd.number, higher)
            )
        (apart if entry.nonstandard else standard).append(entry)
    board.entries = rank(standard, higher, metric)
    board.apart = rank(apart, higher, metric)
    for name in SPREAD_OF:
        values = tuple(
            sorted(
                (
                    (p, c)
                    for p, c in cells
                    if c.result.role == Role.baseline
                    and c.result.baseline == name
                    and c.metric == metric
                    and not c.result.nonstandard
                ),
                key=lambda pc: (pc[1].number, pc[0].year, pc[0].id),
            )
        )
        if values:
            numbers = [c.number for _, c in values]
            board.spreads.append(Spread(name, min(numbers), max(numbers), len(values), values))
    return board


def boards(catalogue: Catalogue) -> dict[str, list[Board]]:
    """benchmark key -> its boards, in the vocabulary's order: classic pairs first (as listed),
    then the others by number of papers; within a pair, the standard split first."""
    vocab = catalogue.benchmarks
    groups: dict[tuple, list[tuple[Paper, Result]]] = defaultdict(list)
    for p in catalogue.papers:
        for r in p.results:
            groups[(r.benchmark, r.teacher, r.student, vocab.split_of(r))].append((p, r))
    out: dict[str, list[Board]] = {}
    for key, bench in vocab.benchmarks.items():
        made = [_board(key, bench, k[1:], rows) for k, rows in groups.items() if k[0] == key]
        if made:
            out[key] = _order(made, bench)
    return out


def _order(made: list[Board], bench: Benchmark) -> list[Board]:
    classic = {tuple(pair): i for i, pair in enumerate(bench.pairs)}
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
        ),
    )


def most_used(board_list: list[Board], bench: Benchmark) -> Board | None:
    """The board of the README: on the standard split, ranked by the main metric (or the
    accuracy it is the error of), the pair with the most papers reporting a proposed result
    (ties: the classic order)."""
    main = bench.metrics[bench.main_metric].error_of or bench.main_metric
    candidates = [
        b for b in board_list if b.metric == main and b.split == bench.split and b.entries
    ]
    if not candidates:
        return None
    classic = {tuple(pair): i for i, pair in enumerate(bench.pairs)}
    return min(candidates, key=lambda b: (-b.papers, classic.get(b.pair, len(classic)), b.pair))


def baseline_loss(name: str, papers: dict[str, Paper]) -> tuple[str, str] | None:
    """(paper id, loss name) of the reference loss a baseline names (``kd``, ``dkd``...): the
    earliest catalogue paper listing that loss; None when no paper does."""
    owners = [p for p in papers.values() if name in p.loss]
    if not owners:
        return None
    first = min(owners, key=lambda p: (p.year, p.id))
    return first.id, name


def anchor(*parts: str) -> str:
    """A stable HTML id for a board (``cifar100-resnet32x4-resnet8x4-test``)."""
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
    """Geometry of the ranked (standard) results by year (dots) and the best so far (a step
    line), with KD as each paper reports it (rings), in the ranking column, for an inline SVG
    drawn by the template; None when the board has no ranked result."""
    shown = [e for e in board.entries if e.rank is not None]
    if not shown:
        return None
    left, right, top, bottom = 48, 16, 12, 30
    years = [e.paper.year for e in shown]
    y0, y1 = min(years), max(years)
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    values = [float(e.cells[board.metric].number) for e in shown]
    kd = [float(c.number) for s in board.spreads if s.baseline == "kd" for _, c in s.values]
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
            "y": y(float(e.cells[board.metric].number)),
            "title": f"{e.method} ({e.paper.id}, {e.paper.year}): {e.cells[board.metric].text}",
        }
        for e in sorted(shown, key=lambda e: (e.paper.year, e.paper.id, e.method))
    ]
    kd_dots = [
        {"x": x(p.year), "y": y(float(c.number)), "title": f"KD in {p.id}: {c.text}"}
        for s in board.spreads
        if s.baseline == "kd"
        for p, c in s.values
    ]
    best, points = None, []
    for year in range(min(years), max(years) + 1):
        here = [e.cells[board.metric].number for e in shown if e.paper.year == year]
        for value in here:
            if best is None or better(value, best, board.higher):
                best = value
        if best is not None:
            points.append(f"{x(year)},{y(float(best))}")
    labels = [year for year in range(y0, y1 + 1) if y1 - y0 <= 12 or (year - y0) % 2 == 0]
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
            # beyond 7 labels every other one (counted from the last) is minor: phones hide it
            {
                "x": x(year),
                "y": height - bottom + 16,
                "value": year,
                "minor": len(labels) > 7 and (len(labels) - 1 - i) % 2 == 1,
            }
            for i, year in enumerate(labels)
        ],
        "base": height - bottom,
    }


def _row(board: Board, e: Entry) -> dict:
    return {
        "entry": e,
        "loss": e.loss,
        "gain": signed(e.gain),
        "cells": [e.cells.get(m) for m in board.metrics],
        "notes": e.notes,
        "sources": e.sources,
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
                        "id": anchor(key, b.teacher, b.student, b.split),
                        "teacher": vocab.label(b.teacher),
                        "student": vocab.label(b.student),
                        "metrics": [bench.metrics[m].label for m in b.metrics],
                        "metric": bench.metrics[b.metric].label,
                        "standard_split": b.split == bench.split,
                        "chart": chart(b),
                        "rows": [_row(b, e) for e in b.entries],
                        "apart": [_row(b, e) for e in b.apart],
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
                "board": anchor(r.benchmark, r.teacher, r.student, split),
            }
        )
    return rows


def readme_tables(catalogue: Catalogue, site_url: str) -> list[dict]:
    """Per benchmark with results: the best few ranked results on its most used pair."""
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
                "rows": [
                    {"entry": e, "value": e.cells[top.metric].text, "gain": signed(e.gain)}
                    for e in top.entries[:README_ROWS]
                ],
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
