"""``kdsurvey arena``: the command-line entry point (``run(args)``), wired by the main CLI.

kdsurvey arena [--losses kd,fitnet] [--task classification|segmentation|both] [--seeds 5]
               [--epochs N] [--device cpu|cuda] [--out FILE] [--shard K/N] [--sweep 1,0.1,0.01]
kdsurvey arena merge FILE... [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

RUN_OUT = "arena.json"  # a run's results file by default (git-ignored at the repository root)
LANGUAGE_OUT = "arena-lm.json"  # the same for --task language


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
        choices=["classification", "segmentation", "both", "language"],
        help="which task's losses to run (default: both; language: the token-level losses on a "
        "synthetic language, kdsurvey.arena.lm)",
    )
    ap.add_argument(
        "--seeds", type=_seeds, default=None, help="seeds 0..N-1 (default 5; language 3)"
    )
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
        help=f"results file, written after every run (default: {RUN_OUT}, language: "
        f"{LANGUAGE_OUT}); merge: required "
        "(results/arena.json updates the committed results)",
    )
    ap.add_argument(
        "--sweep",
        default="1,0.1,0.01",
        help="multiples of each loss's authors' weight, chosen on the validation split "
        "(default: 1,0.1,0.01; 1 alone: no sweep)",
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
        import json
        from pathlib import Path

        from kdsurvey.arena import core

        language = json.loads(Path(args.files[0]).read_text()).get("track") == "language"
        if language:
            from kdsurvey.arena import lm

            res = lm.merge(args.files, args.out)
        else:
            res = core.merge(args.files, args.out)
        print(f"merged {len(res['runs'])} runs into {args.out}", file=sys.stderr)
        return 0
    if args.files:
        print(
            f"arena: unexpected arguments {args.files} (did you mean `arena merge`?)",
            file=sys.stderr,
        )
        return 2
    if args.task == "language":
        return run_language(args)
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
    try:
        factors = [float(f) for f in args.sweep.split(",") if f.strip()]
    except ValueError:
        factors = []
    if 1.0 not in factors or any(f <= 0 for f in factors):
        print(
            f"arena: --sweep {args.sweep!r}: give positive factors, 1 among them",
            file=sys.stderr,
        )
        return 2
    res = core.run_arena(
        losses,
        tasks,
        range(5 if args.seeds is None else args.seeds),
        r,
        args.out,
        device,
        args.shard,
        progress=not args.no_progress,
        command=command_line(args),
        factors=factors,
    )
    print(format_table(res))
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The ``kdsurvey arena`` command that reproduces this run (recorded in the results)."""
    words = ["kdsurvey", "arena"]
    if args.losses:
        words += ["--losses", args.losses]
    words += ["--task", args.task]
    if args.seeds is not None:
        words += ["--seeds", str(args.seeds)]
    if args.epochs:
        words += ["--epochs", str(args.epochs)]
    if args.device:
        words += ["--device", args.device]
    if args.sweep != "1,0.1,0.01":
        words += ["--sweep", args.sweep]
    if args.shard:
        words += ["--shard", args.shard]
    return " ".join(words + ["--out", args.out])


def run_language(args: argparse.Namespace) -> int:
    """``--task language``: the token-level losses on the synthetic language (CPU only)."""
    from kdsurvey.arena import lm

    args.out = args.out or LANGUAGE_OUT
    losses = [x for x in args.losses.split(",") if x] or None
    if losses:
        token = set(lm.token_losses())
        for name in losses:
            if name not in token and name != lm.BASELINE:
                from kdsurvey.losses import get

                get(name)  # KeyError with close matches for a typo
                print(
                    f"arena: {name} is not a token-level loss ([B, T, V] logits)", file=sys.stderr
                )
                return 2
    r = lm.LMRecipe()
    if args.epochs:
        print("arena: --epochs does not apply to --task language", file=sys.stderr)
        return 2
    res = lm.run(
        losses,
        range(3 if args.seeds is None else args.seeds),
        r,
        args.out,
        args.shard,
        progress=not args.no_progress,
        command=command_line(args),
    )
    print(format_language(res))
    return 0


def format_language(res: dict) -> str:
    """The language track's summary: each metric's mean per loss and mode."""
    from kdsurvey.arena.lm import METRICS

    head = f"{'loss/mode':24s} {'n':>2s} " + " ".join(f"{m:>10s}" for m in METRICS)
    lines = [head]
    for key, e in sorted(
        res.get("summary", {}).items(), key=lambda kv: kv[1].get("fkl", {}).get("mean", 9e9)
    ):
        if not e.get("n"):
            lines.append(f"{key:24s} failed: {e.get('error')}")
            continue
        cells = " ".join(f"{e[m]['mean']:10.4f}" for m in METRICS)
        lines.append(f"{key:24s} {e['n']:2d} {cells}")
    return "\n".join(lines)


def format_table(res: dict) -> str:
    """The summary as text: each loss at its authors' settings and at its swept weight, then the
    losses that end worse than the plain student (p < 0.05) and those that fit no task."""
    from kdsurvey.arena.sweep import worse_than_student

    def gain(e, key):
        g = (e or {}).get(key)
        if not g:
            return "-"
        p = g.get("p_ttest_rel")
        return f"{100 * g['mean']:+.1f}" + (f" (p={p:.2g})" if p is not None else "")

    lines = []
    for task, entries in res.get("summary", {}).items():
        lines.append(f"## {task}")
        lines.append(
            f"{'loss':18s} {'n':>2s} {'authors':>13s} {'vs student':>16s} {'vs kd':>16s} "
            f"{'swept':>18s} {'vs student':>16s}"
        )
        for loss, e in sorted(entries.items(), key=lambda kv: -kv[1].get("mean", -1)):
            if "mean" not in e:
                lines.append(f"{loss:18s} {e.get('n', 0):2d} failed: {e.get('error')}")
                continue
            sw = e.get("sweep") or {}
            swept = "-"
            if "mean" in sw:
                swept = f"{100 * sw['mean']:5.1f} ± {100 * sw['std']:4.1f} x{sw['factor']:g}"
            elif sw:
                swept = "no factor ran"
            lines.append(
                f"{loss:18s} {e['n']:2d} {100 * e['mean']:5.1f} ± {100 * e['std']:4.1f} "
                f"{gain(e, 'gain_vs_student'):>16s} {gain(e, 'gain_vs_kd'):>16s} "
                f"{swept:>18s} {gain(sw, 'gain_vs_student'):>16s}"
            )
    worse = worse_than_student(res.get("summary", {}))
    lines.append(
        f"worse than the plain student (p < 0.05): {len(worse['authors'])} at the authors' "
        f"settings, {len(worse['swept'])} at the swept weight"
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
