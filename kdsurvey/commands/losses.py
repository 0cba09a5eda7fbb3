"""``kdsurvey losses list|verify|demo``: the reference loss implementations (needs torch)."""

from __future__ import annotations

import json
from pathlib import Path

from kdsurvey.commands.common import FORMAT, Failure, command, group


def list_losses(args) -> None:
    # The manifest is the registry described as data: no torch needed to list the losses.
    from kdsurvey.losses.manifest import load

    rows = [
        {
            "name": e["name"],
            "paper": e["paper"],
            "evidence": e["evidence"],
            "class": e["class"],
            "parameters": {h["name"]: h["default"] for h in e["hyperparameters"]},
        }
        for e in load()["losses"]
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items())
        print(f"{r['name']:<{width}}  {r['evidence']:<9}  {r['paper']:<28}  {params}")


def manifest(args) -> None:
    from kdsurvey.losses import manifest

    if args.check:
        stale = manifest.check()
        if stale:
            raise Failure(f"{stale}\nthe loss manifest is stale: run `kdsurvey losses manifest`", 1)
        return
    manifest.write()


def verify(args) -> None:
    from kdsurvey.losses.verify import DEFAULT_CASES, run_dir

    directory = Path(args.directory) if args.directory else DEFAULT_CASES
    if not directory.is_dir():
        raise Failure(f"{directory}: no such folder", 2)
    results = run_dir(directory, args.device)
    if not results:
        raise Failure(f"{directory}: no case files (*.json)", 1)
    failed = [r for r in results if not r.passed]
    if args.format == "json":
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        width = max(len(r.method) for r in results)
        cwidth = max(len(r.case) for r in results)
        print(
            f"{'method':<{width}}  {'case':<{cwidth}}  {'|loss diff|':>11}  {'|grad diff|':>11}  result"
        )
        for r in results:
            verdict = "pass" if r.passed else f"FAIL {r.error}".rstrip()
            print(
                f"{r.method:<{width}}  {r.case:<{cwidth}}  {r.loss_diff:>11.3g}  {r.grad_diff:>11.3g}  {verdict}"
            )
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise Failure("", 1)


def demo(args) -> None:
    from kdsurvey.losses import get
    from kdsurvey.losses.demo import demo as train

    try:
        get(args.name)
    except KeyError as exc:
        raise Failure(exc.args[0], 2) from None

    def log(step, value):
        print(f"step {step:3d}  loss {value:.6f}")

    values = train(args.name, steps=args.steps, seed=args.seed, log=log)
    print(f"{args.name}: {values[0]:.6f} -> {values[-1]:.6f}")


def register(subparsers) -> None:
    losses = group(
        subparsers, "losses", "the reference loss implementations (needs the losses extra)"
    )
    command(losses, "list", list_losses, "list registered losses", (FORMAT,))
    p = command(
        losses,
        "verify",
        verify,
        "run reference case files against the losses",
        (FORMAT,),
        "losses",
    )
    p.add_argument(
        "directory",
        metavar="DIR",
        nargs="?",
        help="folder of case files (*.json); default: the repository's tests/fixtures/official_cases",
    )
    p.add_argument(
        "--device", default="cpu", help="torch device to run on, e.g. cuda (default: cpu)"
    )
    p = command(
        losses,
        "manifest",
        manifest,
        "write kdsurvey/losses/manifest.json from the registry",
        (),
        "losses",
    )
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff when it is stale"
    )
    p = command(losses, "demo", demo, "train a tiny student with a loss", (), "losses")
    p.add_argument("name", help="registry name, e.g. dkd")
    p.add_argument("--steps", type=int, default=30, help="training steps (default: 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
