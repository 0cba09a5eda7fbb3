"""The arena's page and the arena rows of paper pages, read from the committed results file.

``results/arena.json`` (written by ``kdsurvey arena``, see :mod:`kdsurvey.arena`) is data here:
this module reads it as JSON and never imports the arena or torch. A loss's paper and evidence
level come from the losses' manifest, its family from the category of that paper's record.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdsurvey.exporters.loss_facts import EVIDENCE, facts
from kdsurvey.records.catalogue import Catalogue

RESULTS = Path("results") / "arena.json"  # relative to the repository (papers/ sits beside it)
BASELINE = "none"  # the plain student
METRIC = {"classification": "accuracy", "segmentation": "mIoU"}
WARNING = (
    "The arena is digits-sized: 8x8 scikit-learn digits and scenes built from them, small CNNs, "
    "a few epochs. A task this small ranks methods differently from CIFAR-100 or ImageNet, so "
    "read it as a like-for-like smoke test of the implementations, not as a leaderboard."
)


def results_path(catalogue: Catalogue) -> Path:
    return catalogue.root.parent / RESULTS


def load(path: Path | str) -> dict | None:
    """The results file, or None when there is none."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def completeness(results: dict) -> dict:
    """Runs done (successful, failed) against the whole arena's plan, and which (task, loss)
    pairs failed on some seeds: ``failed`` lists ``(task, loss, failed seeds, seeds run)``."""
    runs = results.get("runs", [])
    ok = sum(1 for x in runs if x.get("status") == "ok")
    plan = results.get("plan") or {}
    planned = int(plan.get("runs") or len(runs))
    failed = [
        (task, loss, e["errors"], e.get("n", 0) + e["errors"])
        for task, entries in sorted(results.get("summary", {}).items())
        for loss, e in sorted(entries.items())
        if e.get("errors")
    ]
    return {
        "done": len(runs),
        "ok": ok,
        "errors": len(runs) - ok,
        "planned": planned,
        "percent": round(100 * len(runs) / planned) if planned else 0,
        "losses": plan.get("losses"),
        "seeds": plan.get("seeds"),
        "failed": failed,
    }


def reason(error: str | None) -> str:
    """A failed run's error as a reader needs it: the exception and its message, without the
    values dumped after a colon (``FloatingPointError: non-finite loss at epoch 1``)."""
    if not error:
        return ""
    kind, _, message = error.partition(": ")
    return f"{kind}: {message.split(': ', 1)[0]}" if message else kind


def _gain(entry: dict, key: str) -> dict | None:
    g = entry.get(key)
    if not g:
        return None
    return {"mean": 100 * g["mean"], "std": 100 * g["std"], "n": g["n"], "p": g.get("p_ttest_rel")}


def rows(results: dict, catalogue: Catalogue) -> list[dict]:
    """One row per (task, loss) of the summary, in task then best-first order."""
    papers = {p.id: p for p in catalogue.papers}
    categories = catalogue.categories
    out = []
    for task, entries in sorted(results.get("summary", {}).items()):
        ranked = sorted(entries.items(), key=lambda kv: (-kv[1].get("mean", -1.0), kv[0]))
        for position, (loss, e) in enumerate(ranked, 1):
            info = facts(loss) if loss != BASELINE else None
            paper = papers.get(info.paper) if info else None
            family = categories.get(paper.category.value) if paper else None
            out.append(
                {
                    "task": task,
                    "metric": METRIC.get(task, "metric"),
                    "loss": loss,
                    "paper": paper,
                    "family": family.title if family else "",
                    "evidence": info.evidence if info else "",
                    "n": e.get("n", 0),
                    "errors": e.get("errors", 0),
                    "rank": position if "mean" in e else None,
                    "error": reason(e.get("error")),
                    "mean": 100 * e["mean"] if "mean" in e else None,
                    "std": 100 * e["std"] if "std" in e else None,
                    "vs_student": _gain(e, "gain_vs_student"),
                    "vs_kd": _gain(e, "gain_vs_kd"),
                    "time": e.get("time_per_epoch_s"),
                }
            )
    return out


def paper_rows(rows_: list[dict], paper_id: str) -> list[dict]:
    """The arena rows of the losses that implement paper ``paper_id``."""
    return [r for r in rows_ if r["paper"] is not None and r["paper"].id == paper_id]


def page(env, catalogue: Catalogue, results: dict | None, edit_url: str | None = None) -> str:
    """The text of ``catalogue/arena.md``; its edit link goes to ``edit_url`` (the results
    file it is generated from), never to the generated page."""
    return env.get_template("site/arena.md.j2").render(
        edit_url=edit_url,
        tasks=sorted(results.get("summary", {})) if results else [],
        results=results,
        rows=rows(results, catalogue) if results else [],
        done=completeness(results) if results else None,
        evidence=EVIDENCE,
        warning=WARNING,
        metric=METRIC,
    )
