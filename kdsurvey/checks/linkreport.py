"""The reports of ``kdsurvey check links``: summary counts, the table, GitHub annotations (through
the shared :mod:`kdsurvey.problems` renderer) and the weekly Markdown issue."""

from __future__ import annotations

from collections import Counter

from kdsurvey.checks.linkresults import DEAD, INCONCLUSIVE, OK, Verdict
from kdsurvey.problems import ERROR, NOTICE, WARNING, Problem, annotation


def summary(rows: list[Verdict], cache_hits: int = 0) -> dict:
    counts = Counter(row.verdict for row in rows)
    return {
        "links": len(rows),
        OK: counts[OK],
        DEAD: counts[DEAD],
        INCONCLUSIVE: counts[INCONCLUSIVE],
        "from_cache": cache_hits,
        "moved": sum(1 for row in rows if row.suggestion),
    }


def table(rows: list[Verdict]) -> str:
    if not rows:
        return "no links to check\n"
    where = [f"{row.source}:{row.line}" for row in rows]
    width = max(len(w) for w in where)
    lines = [f"{'verdict':<12}  {'http':>4}  {'where':<{width}}  url  (message)"]
    for row, at in zip(rows, where, strict=True):
        status = str(row.status) if row.status is not None else "-"
        note = f"  ({row.message})" if row.message else ""
        cached = " [cached]" if row.cached else ""
        lines.append(f"{row.verdict:<12}  {status:>4}  {at:<{width}}  {row.url}{note}{cached}")
    return "\n".join(lines) + "\n"


def problems(rows: list[Verdict]) -> list[tuple[Problem, str]]:
    """The rows worth a reader's attention as problems, with a title: dead links are errors,
    unverified ones warnings, moved ones notices."""
    found = []
    for row in rows:
        if row.verdict == DEAD:
            severity, title = ERROR, "dead link"
        elif row.verdict == INCONCLUSIVE:
            severity, title = WARNING, "link not verified"
        elif row.suggestion:
            severity, title = NOTICE, "link moved"
        else:
            continue
        message = row.url + (f": {row.message}" if row.message else "")
        found.append((Problem(row.source, row.line, row.field, message, severity), title))
    return found


def annotations(rows: list[Verdict]) -> str:
    """GitHub Actions workflow commands: errors for dead links, warnings, notices for moves."""
    return "".join(annotation(problem, title=title) for problem, title in problems(rows))


def markdown(rows: list[Verdict], counts: dict) -> str:
    """The weekly report (the body of the tracking issue)."""
    lines = [
        "# Link check",
        "",
        f"{counts['links']} links: {counts[OK]} ok, {counts[DEAD]} dead, "
        f"{counts[INCONCLUSIVE]} inconclusive.",
        "",
    ]
    if counts.get("network_down"):
        lines += [f"**Not checked: {counts['network_down']}.**", ""]
    for verdict, heading in ((DEAD, "Dead"), (INCONCLUSIVE, "Inconclusive")):
        chosen = [r for r in rows if r.verdict == verdict]
        if not chosen:
            continue
        lines += [
            f"## {heading} ({len(chosen)})",
            "",
            "| where | link | http | message |",
            "|---|---|---|---|",
        ]
        for row in chosen:
            message = row.message.replace("|", "\\|")
            lines.append(
                f"| `{row.source}:{row.line}` ({row.field}) | <{row.url}> | "
                f"{row.status if row.status is not None else '-'} | {message} |"
            )
        lines.append("")
    moved = [r for r in rows if r.suggestion]
    if moved:
        lines += [f"## Moved ({len(moved)})", ""]
        lines += [f"- `{r.source}:{r.line}`: <{r.url}> -> <{r.suggestion}>" for r in moved]
        lines.append("")
    if not counts[DEAD] and not counts.get("network_down"):
        lines += ["No dead links.", ""]
    return "\n".join(lines)
