"""The home page's chart: papers per year, stacked by category, as inline SVG geometry."""

from __future__ import annotations

from collections import Counter

from kdsurvey.records.catalogue import Catalogue


def chart(catalogue: Catalogue) -> dict:
    """Geometry of the home page's stacked bar chart: papers per year by category (inline SVG)."""
    counts = Counter((p.year, p.category.value) for p in catalogue.papers)
    if not counts:
        return {"bars": [], "width": 0, "height": 0, "ticks": [], "labels": []}
    years = list(range(min(y for y, _ in counts), max(y for y, _ in counts) + 1))
    cats = list(catalogue.categories)
    totals = {y: sum(counts[(y, c)] for c in cats) for y in years}
    top = max(totals.values())
    step = next(
        s
        for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10**9)
        if top / s <= 6
    )
    top = -(-top // step) * step
    left, right, head, foot, plot_h = 40, 10, 10, 24, 200
    bar_w = max(8, min(36, 680 // len(years)))
    gap = max(2, bar_w // 4)
    width = left + len(years) * (bar_w + gap) + right
    scale = plot_h / top
    bars, labels = [], []
    every = 1 if len(years) <= 16 else 2 if len(years) <= 32 else 5
    for i, y in enumerate(years):
        x = left + i * (bar_w + gap) + gap / 2
        base = head + plot_h
        for c in cats:
            n = counts[(y, c)]
            if n:
                h = n * scale
                base -= h
                bars.append(
                    {
                        "x": x,
                        "y": round(base, 2),
                        "w": bar_w,
                        "h": round(h, 2),
                        "category": c,
                        "year": y,
                        "count": n,
                    }
                )
        if i % every == 0 or y == years[-1]:
            labels.append({"x": x + bar_w / 2, "y": head + plot_h + 16, "text": y})
    for i, label in enumerate(labels):  # beyond 7, phones (where labels grow) show every other
        label["minor"] = len(labels) > 7 and (len(labels) - 1 - i) % 2 == 1
    ticks = [
        {"y": round(head + plot_h - v * scale, 2), "value": v} for v in range(0, top + 1, step)
    ]
    return {
        "bars": bars,
        "width": width,
        "height": head + plot_h + foot,
        "left": left,
        "ticks": ticks,
        "labels": labels,
        "right": width - right,
        "total": len(catalogue.papers),
        "first": years[0],
        "last": years[-1],
    }
