"""The arena's weight sweep: the authors' weight, and the best of a few multiples of it.

A loss's authors tuned its weight on CIFAR-100 or ImageNet; on digits it may be far too strong.
So every loss runs twice over: at its authors' settings (factor 1) on every seed, and at the best
multiple of that weight (factor 1, 0.1 or 0.01; :data:`FACTORS`). The best multiple is chosen on
the sweep seeds by the mean score on a validation split carved from the training split (never on
the test set); it then runs on every seed, so both numbers are means over the same seeds. A run
that fails or diverges scores nothing, so a factor that diverges is never chosen.

Torch-free: the site reads results through it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

FACTORS = (1.0, 0.1, 0.01)  # multiples of the authors' distillation weight
SEEDS = (0,)  # the seeds the other factors run at before one is chosen
BASELINE = "none"  # the plain student: nothing to sweep


def factor(run: dict) -> float:
    """The multiple of the authors' weight a run used (results written before the sweep: 1)."""
    return float(run.get("factor", 1.0))


def first_runs(
    task: str, loss: str, seeds: Sequence[int], factors: Sequence[float] = FACTORS
) -> list[tuple]:
    """The runs of one loss on one task that do not wait for a choice: ``(task, loss, seed,
    factor)`` for the authors' factor on every seed, and the other factors on the sweep seeds."""
    out = [(task, loss, seed, 1.0) for seed in seeds]
    if loss != BASELINE:
        out += [(task, loss, s, f) for f in factors if f != 1.0 for s in SEEDS if s in seeds]
    return out


def best_factor(
    runs: Sequence[dict], task: str, loss: str, factors: Sequence[float] = FACTORS
) -> float | None:
    """The factor with the best mean validation score on the sweep seeds.

    ``None`` while a sweep run is missing, or when every factor failed. Ties go to the larger
    factor (the one nearer the authors' setting).
    """
    scores: dict[float, list[float]] = {f: [] for f in factors}
    seen: dict[float, set[int]] = {f: set() for f in factors}
    for x in runs:
        f = factor(x)
        if x["task"] != task or x["loss"] != loss or f not in scores or x["seed"] not in SEEDS:
            continue
        seen[f].add(x["seed"])
        if x.get("status") == "ok" and x.get("val_metric") is not None:
            scores[f].append(x["val_metric"])
    seeds = {s for f in factors for s in seen[f]}
    if any(seen[f] != seeds for f in factors) or not seeds:
        return None
    means = {f: statistics.fmean(v) for f, v in scores.items() if len(v) == len(seeds)}
    if not means:
        return None
    return max(sorted(means, reverse=True), key=lambda f: means[f])


def later_runs(
    runs: Sequence[dict],
    task: str,
    loss: str,
    seeds: Sequence[int],
    factors: Sequence[float] = FACTORS,
) -> list[tuple]:
    """The chosen factor's runs on the seeds the sweep did not cover (none when it is 1)."""
    best = best_factor(runs, task, loss, factors) if len(factors) > 1 else 1.0
    if best is None or best == 1.0:
        return []
    return [(task, loss, s, best) for s in seeds if s not in SEEDS]


def worse_than_student(summary: dict, alpha: float = 0.05) -> dict[str, list[str]]:
    """``task/loss`` entries whose student ends worse than the plain student at p < ``alpha``
    (paired t-test over seeds): at the authors' settings, and at the swept weight."""
    out: dict[str, list[str]] = {"authors": [], "swept": []}
    for task, entries in sorted(summary.items()):
        for loss, e in sorted(entries.items()):
            for key, entry in (("authors", e), ("swept", e.get("sweep", e))):
                g = (entry or {}).get("gain_vs_student")
                if g and g["mean"] < 0 and g.get("p_ttest_rel", 1.0) < alpha:
                    out[key].append(f"{task}/{loss}")
    return out
