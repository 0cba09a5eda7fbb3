"""The arena's statistics: per task and loss, mean ± std over seeds and paired gains.

Runs are grouped by task, loss and sweep factor. Gains are paired by seed against the plain
student and against KD, both at their authors' settings, with a paired t-test (scipy) where the
differences vary. Torch-free, like :mod:`.sweep`.
"""

from __future__ import annotations

import statistics
from typing import Any

from kdsurvey.arena import sweep

BASELINE = sweep.BASELINE


def _compare(ok: dict[int, dict], by: dict, task: str, loss: str) -> dict[str, Any]:
    """Mean ± std of the runs ``ok`` (seed -> run), and their paired gains over the plain
    student and KD at the authors' settings (paired t-test over the common seeds)."""
    from scipy import stats

    vals = [ok[s]["metric"] for s in sorted(ok)]
    entry: dict[str, Any] = {
        "n": len(ok),
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "time_per_epoch_s": statistics.fmean(x["time_per_epoch_s"] for x in ok.values()),
    }
    first = ok[min(ok)]
    if "weight" in first:  # the settings it trained at: distillation and label-term weights
        entry["weight"], entry["task_weight"] = first["weight"], first["task_weight"]
    for ref, label in ((BASELINE, "student"), ("kd", "kd")):
        base = {s: x for s, x in by.get((task, ref, 1.0), {}).items() if x["status"] == "ok"}
        common = sorted(set(ok) & set(base))
        if loss == ref or not common:
            continue
        a = [ok[s]["metric"] for s in common]
        b = [base[s]["metric"] for s in common]
        diffs = [u - v for u, v in zip(a, b, strict=True)]
        g = {
            "mean": statistics.fmean(diffs),
            "std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
            "n": len(diffs),
        }
        if len(diffs) > 1 and any(d != diffs[0] for d in diffs):
            g["p_ttest_rel"] = float(stats.ttest_rel(a, b).pvalue)
        entry[f"gain_vs_{label}"] = g
    return entry


def _failures(runs: dict[int, dict]) -> dict[str, Any]:
    """How many of these runs failed, and the first failure's reason (``error``)."""
    bad = [runs[s] for s in sorted(runs) if runs[s]["status"] != "ok"]
    out: dict[str, Any] = {"errors": len(bad)}
    if bad:
        out["error"] = bad[0].get("error")
        out["diverged"] = sum(x["status"] == "diverged" for x in bad)
    return out


def summarise(runs: list[dict]) -> dict:
    """Per task and loss: mean ± std metric at the authors' settings, paired gains over the
    plain student and KD, the reason of any failure, and under ``sweep`` the validation score of
    each factor, the chosen one and the same statistics at it."""
    by: dict[tuple, dict[int, dict]] = {}
    for x in runs:
        by.setdefault((x["task"], x["loss"], sweep.factor(x)), {})[x["seed"]] = x
    out: dict[str, dict] = {}
    for task, loss in sorted({(t, n) for t, n, _ in by}):
        authors = by.get((task, loss, 1.0), {})
        ok = {s: x for s, x in authors.items() if x["status"] == "ok"}
        entry: dict[str, Any] = {"n": len(ok), **_failures(authors)}
        if ok:
            entry.update(_compare(ok, by, task, loss))
        factors = sorted({f for t, n, f in by if (t, n) == (task, loss)}, reverse=True)
        if loss != BASELINE and len(factors) > 1:
            val = {}
            for f in factors:
                scores = [
                    x["val_metric"]
                    for s, x in by[(task, loss, f)].items()
                    if s in sweep.SEEDS and x["status"] == "ok"
                ]
                val[f"{f:g}"] = statistics.fmean(scores) if scores else None
            best = sweep.best_factor(runs, task, loss, factors)
            swept: dict[str, Any] = {"val": val, "factor": best}
            if best is not None:
                chosen = by[(task, loss, best)]
                good = {s: x for s, x in chosen.items() if x["status"] == "ok"}
                swept.update({"n": len(good), **_failures(chosen)})
                if good:
                    swept.update(_compare(good, by, task, loss))
            entry["sweep"] = swept
        out.setdefault(task, {})[loss] = entry
    return out
