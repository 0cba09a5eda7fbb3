"""``kdsurvey arena``: the command-line entry point (``run(args)``), wired by the main CLI.

kdsurvey arena [--losses kd,fitnet] [--task classification|segmentation|both] [--seeds 5]
               [--epochs N] [--device cpu|cuda] [--out FILE] [--shard K/N]
kdsurvey arena merge FILE... [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

RUN_OUT = "arena.json"  # a run's results file by default (git-ignored at the repository root)


def _seeds(text: str) -> int:
    """``--seeds N``: at least one seed (0 would run nothing and write an empty file)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least one seed")
    return value


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=["run", "merge"],
        help="run the arena (default) or merge results files",
    )
    ap.add_argument("files", nargs="*", help="results files to merge (merge only)")
    ap.add_argument("--losses", default="", help="comma-separated registry names (default: all)")
    ap.add_argument(
        "--task",
        default="both",
        choices=["classification", "segmentation", "both"],
        help="which task's losses to run (default: both)",
    )
    ap.add_argument("--seeds", type=_seeds, default=5, help="seeds 0..N-1 (default 5)")
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="student epochs for both tasks (default: 30 classification, 20 segmentation)",
    )
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument(
        "--out",
        default=None,
        help=f"results file, written after every run (default: {RUN_OUT}); merge: required "
        "(results/arena.json updates the committed results)",
    )
    ap.add_argument("--shard", default=None, help="K/N: run only the K-th of N slices of the runs")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    if args.action == "merge":
        if not args.files:
            print("arena merge: give results files", file=sys.stderr)
            return 2
        if not args.out:
            print(
                "arena merge: give --out FILE (results/arena.json to update the committed results)",
                file=sys.stderr,
            )
            return 2
        from kdsurvey.arena import core

        res = core.merge(args.files, args.out)
        print(f"merged {len(res['runs'])} runs into {args.out}", file=sys.stderr)
        return 0
    if args.files:
        print(
            f"arena: unexpected arguments {args.files} (did you mean `arena merge`?)",
            file=sys.stderr,
        )
        return 2
    import torch

    from kdsurvey.arena import core

    args.out = args.out or RUN_OUT
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    r = core.Recipe()
    if args.epochs:
        r = dataclasses.replace(r, epochs=args.epochs, dense_epochs=args.epochs)
    tasks = ["classification", "segmentation"] if args.task == "both" else [args.task]
    losses = [x for x in args.losses.split(",") if x] or None
    if losses:
        from kdsurvey.losses import get

        for name in losses:
            if name != "none":
                get(name)  # KeyError with close matches for a typo
    res = core.run_arena(
        losses,
        tasks,
        range(args.seeds),
        r,
        args.out,
        device,
        args.shard,
        progress=not args.no_progress,
        command=command_line(args),
    )
    print(format_table(res))
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The ``kdsurvey arena`` command that reproduces this run (recorded in the results)."""
    words = ["kdsurvey", "arena"]
    if args.losses:
        words += ["--losses", args.losses]
    words += ["--task", args.task, "--seeds", str(args.seeds)]
    if args.epochs:
        words += ["--epochs", str(args.epochs)]
    if args.device:
        words += ["--device", args.device]
    if args.shard:
        words += ["--shard", args.shard]
    return " ".join(words + ["--out", args.out])


def format_table(res: dict) -> str:
    lines = []
    for task, entries in res.get("summary", {}).items():
        lines.append(f"## {task}")
        lines.append(
            f"{'loss':18s} {'n':>2s} {'metric':>15s} {'vs student':>16s} {'vs kd':>16s} "
            f"{'s/epoch':>8s}"
        )
        for loss, e in sorted(entries.items(), key=lambda kv: -kv[1].get("mean", -1)):
            if "mean" not in e:
                lines.append(f"{loss:18s} error: {e.get('error')}")
                continue

            def gain(key, e=e):
                g = e.get(key)
                if not g:
                    return "-"
                p = g.get("p_ttest_rel")
                return f"{100 * g['mean']:+.1f}" + (f" (p={p:.2g})" if p is not None else "")

            lines.append(
                f"{loss:18s} {e['n']:2d} {100 * e['mean']:6.1f} ± {100 * e['std']:4.1f} "
                f"{gain('gain_vs_student'):>16s} {gain('gain_vs_kd'):>16s} "
                f"{e['time_per_epoch_s']:8.3f}"
            )
    for name, why in res.get("not_fitting", {}).items():
        lines.append(f"not fitting: {name}: {why}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="kdsurvey arena", description=__doc__.splitlines()[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
