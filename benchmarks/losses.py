"""Time forward + backward of every registered distillation loss at realistic sizes.

Each loss runs on its class's ``example_inputs(large=True)`` (logits 256x100, feature maps
64x256x16x16), built without adapters (``create(name)``), so the number is the cost of the loss
itself. The median of ``--repeat`` runs after ``--warmup`` runs is reported, with the ratio to
plain KD (``kd``) timed in the same process as the baseline.

    python benchmarks/losses.py                 # Markdown table on stdout
    python benchmarks/losses.py --json out.json # also write the numbers as JSON
    python benchmarks/losses.py -k at nst ofd   # only these losses (plus the kd baseline)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdsurvey.losses import available, create, get  # noqa: E402

BASELINE = "kd"


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


def _move(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [_move(v, device) for v in value]
    return value


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loss(name: str, device: torch.device, dtype: torch.dtype, warmup: int, repeat: int):
    """Median and min milliseconds of one forward + backward of loss ``name``."""
    gen = torch.Generator().manual_seed(0)
    kwargs = {
        k: _move(v, device)
        for k, v in get(name).example_inputs(dtype=dtype, generator=gen, large=True).items()
    }
    students = [
        t
        for k, v in kwargs.items()
        if k.endswith("_student")
        for t in _tensors(v)
        if t.is_floating_point()
    ]
    for t in students:
        t.requires_grad_(True)
    torch.manual_seed(0)
    loss = create(name).to(device=device, dtype=dtype)

    def step():
        for t in students:
            t.grad = None
        value = loss(**kwargs)
        value.backward()

    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", "--only", nargs="*", help="loss names to time (default: all)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    names = available()
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown loss names: {', '.join(unknown)}")
        names = [n for n in names if n in args.only]

    # the baseline is timed before and after the table (the first run also warms the device up);
    # the faster of the two medians is used
    base_ms, _ = time_loss(BASELINE, device, dtype, args.warmup, args.repeat)
    rows = []
    for name in names:
        try:
            ms, best = time_loss(name, device, dtype, args.warmup, args.repeat)
            error = ""
        except Exception as exc:  # noqa: BLE001 - one broken loss must not hide the others
            ms = best = float("nan")
            error = f"{type(exc).__name__}: {exc}"
        rows.append(
            {
                "name": name,
                "evidence": get(name).evidence,
                "ms": ms,
                "min_ms": best,
                "error": error,
            }
        )
    base_ms = min(base_ms, time_loss(BASELINE, device, dtype, args.warmup, args.repeat)[0])
    for r in rows:
        r["vs_kd"] = r["ms"] / base_ms

    print(
        f"Forward + backward, median of {args.repeat} runs after {args.warmup} warm-up; "
        f"{args.device} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), {args.dtype}, torch {torch.__version__}. "
        f"Baseline {BASELINE}: {base_ms:.3f} ms.\n"
    )
    print("| name | evidence | ms fwd+bwd | x kd |")
    print("|---|---|---:|---:|")
    for r in rows:
        if r["error"]:
            print(f"| {r['name']} | {r['evidence']} | error: {r['error'][:60]} | |")
        else:
            print(f"| {r['name']} | {r['evidence']} | {r['ms']:.3f} | {r['vs_kd']:.2f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": args.device,
                    "dtype": args.dtype,
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "warmup": args.warmup,
                    "repeat": args.repeat,
                    "baseline": {"name": BASELINE, "ms": base_ms},
                    "results": rows,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
