"""Per-loss cost of the arena: seconds per training epoch of each loss on its task, and the
projected wall time of the full arena (every loss, ``--seeds`` seeds, both tasks).

    python benchmarks/arena.py [--epochs 2] [--seeds 5] [--losses kd,fitnet] [--json FILE]

Each loss trains a student for ``--epochs`` epochs with the arena's recipe (1 thread, as the
arena runs); the teacher comes from the arena's cache (trained on first use, not timed). The
projection multiplies each loss's time per epoch by the recipe's epochs and the seed count, adds
evaluation, and divides by ``--processes`` (arena shards run in parallel).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch

from kdsurvey.arena import core, recipe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--losses", default="")
    ap.add_argument("--tasks", default="classification,segmentation")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    full = core.Recipe()
    r = dataclasses.replace(full, epochs=args.epochs, dense_epochs=args.epochs)
    losses = args.losses.split(",") if args.losses else recipe.all_jobs_losses()
    rows = []
    teachers = {}
    for task_name in args.tasks.split(","):
        for loss in losses:
            if task_name not in recipe.home_tasks(loss):
                continue
            if task_name not in teachers:
                task = core.TASKS[task_name]()
                teachers[task_name] = (task, core.train_teacher(task, full)[0])
            task, teacher = teachers[task_name]
            start = time.perf_counter()
            try:
                rec = core.run_one(task, loss, 0, r, teacher)
                per_epoch, err = rec["time_per_epoch_s"], ""
            except Exception as e:  # noqa: BLE001
                per_epoch, err = float("nan"), f"{type(e).__name__}: {e}".splitlines()[0][:120]
            total = time.perf_counter() - start
            overhead = max(0.0, total - per_epoch * args.epochs)  # setup + evaluation
            epochs = full.dense_epochs if task.dense else full.epochs
            run_s = per_epoch * epochs + overhead
            rows.append(
                {
                    "task": task_name,
                    "loss": loss,
                    "time_per_epoch_s": per_epoch,
                    "projected_run_s": run_s,
                    "error": err,
                }
            )
            print(
                f"{task_name[:3]} {loss:18s} {per_epoch:8.3f} s/epoch  run ~{run_s:6.1f} s"
                + (f"  ERROR {err}" if err else ""),
                file=sys.stderr,
                flush=True,
            )
    ok = [x for x in rows if not x["error"]]
    projected = sum(x["projected_run_s"] for x in ok) * args.seeds / args.processes
    for x in sorted(ok, key=lambda x: -x["projected_run_s"])[:10]:
        print(f"  costliest: {x['task'][:3]} {x['loss']:18s} {x['projected_run_s']:6.1f} s/run")
    print(
        f"full arena: {len(ok)} (loss, task) pairs x {args.seeds} seeds, "
        f"{full.epochs}/{full.dense_epochs} epochs: ~{projected / 60:.1f} min on {args.processes} processes"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"recipe": dataclasses.asdict(full), "rows": rows, "projected_min": projected / 60},
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
