"""The arena's page and the arena rows of paper pages, read from the committed results file.

``results/arena.json`` (written by ``kdsurvey arena``, see :mod:`kdsurvey.arena`) is data here:
this module reads it as JSON and never imports the arena or torch. A loss's paper and evidence
level come from the losses' manifest, its family from the category of that paper's record.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdsurvey.arena import sweep
from kdsurvey.exporters.loss_facts import EVIDENCE, facts
from kdsurvey.records.catalogue import Catalogue

RESULTS = Path("results") / "arena.json"  # relative to the repository (papers/ sits beside it)
LANGUAGE = Path("results") / "arena-lm.json"  # the language track (kdsurvey arena --task language)
# the language track's metrics: label, and whether higher is better
LM_METRICS = {
    "nll": ("NLL", False),
    "fkl": ("KL(truth ‖ student)", False),
    "rkl": ("KL(student ‖ truth)", False),
    "coverage": ("Mass covered", True),
    "sample_nll": ("Sample NLL", False),
}
BASELINE = "none"  # the plain student
METRIC = {"classification": "accuracy", "segmentation": "mIoU"}
WARNING = (
    "The arena is digits-sized: 8x8 scikit-learn digits and scenes built from them, small CNNs, "
    "a few epochs. A task this small ranks methods differently from CIFAR-100 or ImageNet, so "
    "read it as a like-for-like smoke test of the implementations, not as a leaderboard."
)


def results_path(catalogue: Catalogue, which: Path = RESULTS) -> Path:
    return catalogue.root.parent / which


def load(path: Path | str) -> dict | None:
    """The results file, or None when there is none."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def completeness(results: dict) -> dict:
    """Runs done (successful, failed) against the whole arena's plan (the runs known in advance
    plus those the sweep's choices added, :mod:`kdsurvey.arena.sweep`), how many losses end worse
    than the plain student, and which (task, loss) pairs failed on some seeds: ``failed`` lists
    ``(task, loss, failed seeds, seeds run)`` at the authors' settings."""
    runs = results.get("runs", [])
    ok = sum(1 for x in runs if x.get("status") == "ok")
    plan = results.get("plan") or {}
    seeds = range(int(plan.get("seeds") or 0))
    factors = (results.get("config", {}).get("sweep") or {}).get("factors") or [1.0]
    chosen = sum(
        len(sweep.later_runs(runs, task, loss, seeds, factors))
        for task, entries in results.get("summary", {}).items()
        for loss in entries
    )
    planned = int(plan.get("runs") or len(runs)) + chosen
    worse = sweep.worse_than_student(results.get("summary", {}))
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
        # losses whose student ends worse than the plain student (p < 0.05), both settings
        "worse_authors": len(worse["authors"]),
        "worse_swept": len(worse["swept"]),
        "factors": [f"{f:g}" for f in factors],  # the sweep's multiples of the authors' weight
        "failed": failed,
    }


def reason(error: str | None) -> str:
    """A failed run's error as a reader needs it: the exception and its message, without the
    values dumped after a colon (``Diverged: non-finite loss at epoch 1, step 4, weight 1000``)."""
    if not error:
        return ""
    kind, _, message = error.partition(": ")
    return f"{kind}: {message.split(': ', 1)[0]}" if message else kind


def _gain(entry: dict | None, key: str) -> dict | None:
    g = (entry or {}).get(key)
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
                    "weight": e.get("weight"),
                    "task_weight": e.get("task_weight"),
                    "swept": _swept(e.get("sweep")),
                }
            )
    return out


def _swept(entry: dict | None) -> dict | None:
    """The loss at its swept weight: the chosen multiple of the authors' weight and its scores."""
    if not entry:
        return None
    return {
        "factor": entry.get("factor"),
        "mean": 100 * entry["mean"] if "mean" in entry else None,
        "std": 100 * entry["std"] if "std" in entry else None,
        "n": entry.get("n", 0),
        "error": reason(entry.get("error")),
        "vs_student": _gain(entry, "gain_vs_student"),
        "val": entry.get("val") or {},
    }


def paper_rows(rows_: list[dict], paper_id: str) -> list[dict]:
    """The arena rows of the losses that implement paper ``paper_id``."""
    return [r for r in rows_ if r["paper"] is not None and r["paper"].id == paper_id]


def language_rows(results: dict, catalogue: Catalogue) -> list[dict]:
    """One row per (loss, mode) of the language track, lowest KL(truth ‖ student) first."""
    papers = {p.id: p for p in catalogue.papers}
    out = []
    for key, e in results.get("summary", {}).items():
        loss, _, mode = key.partition("/")
        info = facts(loss) if loss != BASELINE else None
        metrics = {}
        for m in LM_METRICS:
            if m in e:
                g = e[m]
                metrics[m] = {
                    "mean": g["mean"],
                    "std": g["std"],
                    **{
                        ref: {
                            "mean": g[f"vs_{ref}"]["mean"],
                            "p": g[f"vs_{ref}"].get("p_ttest_rel"),
                        }
                        for ref in ("student", "kd")
                        if f"vs_{ref}" in g
                    },
                }
        out.append(
            {
                "loss": loss,
                "mode": mode,
                "paper": papers.get(info.paper) if info else None,
                "n": e.get("n", 0),
                "error": reason(e.get("error")),
                "metrics": metrics,
            }
        )
    return sorted(out, key=lambda r: (r["metrics"].get("fkl", {}).get("mean", 9e9), r["loss"]))


def page(
    env,
    catalogue: Catalogue,
    results: dict | None,
    edit_url: str | None = None,
    language: dict | None = None,
) -> str:
    """The text of ``catalogue/arena.md``; its edit link goes to ``edit_url`` (the results
    file it is generated from), never to the generated page."""
    return env.get_template("site/arena.md.j2").render(
        edit_url=edit_url,
        tasks=sorted(results.get("summary", {})) if results else [],
        language=language,
        language_rows=language_rows(language, catalogue) if language else [],
        lm_metrics=LM_METRICS,
        results=results,
        rows=rows(results, catalogue) if results else [],
        done=completeness(results) if results else None,
        evidence=EVIDENCE,
        warning=WARNING,
        metric=METRIC,
    )
