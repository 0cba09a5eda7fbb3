"""Peak memory and time of a token-level KD loss at real vocabularies, beside torchtune's.

One forward + backward of the forward KL (``torchtune_fkl``, torchtune's ``ForwardKLLoss``) over
B*T = 2,048 positions (B = 4, T = 512) at V = 32,000 and V = 128,256, on CPU, for:

- ``kdsurvey chunked``: ``create("torchtune_fkl", chunk_size=64)`` (chunks of 64 positions,
  ``--chunk-size``; small chunks stay in cache between the passes over them);
- ``kdsurvey plain``: the same loss evaluated at once (``chunk_size=None``);
- ``torchtune chunked``: ``ForwardKLWithChunkedOutputLoss(num_output_chunks=8)``, fed the logits
  split in 8 along T as its recipes do.

Each measurement runs in a fresh subprocess. Peak memory is the process's peak resident size
during the steps minus its resident size once the inputs exist, so it counts what the loss and
its backward allocate (the gradient included); time is the median of ``--repeat`` steps after one
warm-up. All three values are checked equal before anything is reported.

torchtune is not a dependency: it is imported when installed, or its loss file is loaded from
``--torchtune-file`` (``torchtune/modules/loss/kd_losses.py`` of a checkout); without either the
torchtune rows say so and the goal is not checked.

    python benchmarks/llm_losses.py --torchtune-file /tmp/kd_losses.py
    python benchmarks/llm_losses.py --vocab 32000 --dtype float32 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH, SEQ, CHUNKS = 4, 512, 8
IMPLS = ("kdsurvey chunked", "kdsurvey plain", "torchtune chunked")
GOAL_MEMORY, GOAL_TIME = 1.0, 1.2  # at most torchtune's peak, within 1.2x its time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def torchtune_losses(path: str | None):
    """torchtune's ``kd_losses`` module: the installed package, else the file at ``path``."""
    try:
        from torchtune.modules.loss import kd_losses

        return kd_losses
    except ImportError:
        pass
    if path is None:
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location("torchtune_kd_losses", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child(impl: str, vocab: int, dtype_name: str, repeat: int, tt_file, chunk_size: int) -> dict:
    """One implementation at one vocabulary size, in this (fresh) process."""
    import torch

    from kdsurvey.losses import create

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(0)
    s = torch.empty(BATCH, SEQ, vocab, dtype=dtype)
    t = torch.empty(BATCH, SEQ, vocab, dtype=dtype)
    s.normal_(generator=gen)
    t.normal_(generator=gen).mul_(2)
    target = torch.randint(0, vocab, (BATCH, SEQ), generator=gen)
    target[:, :64] = -100  # a prompt
    s.requires_grad_(True)
    if impl == "torchtune chunked":
        tt = torchtune_losses(tt_file)
        if tt is None:
            return {"absent": True}
        loss_fn = tt.ForwardKLWithChunkedOutputLoss(num_output_chunks=CHUNKS)

        def step():
            return loss_fn(list(s.chunk(CHUNKS, dim=1)), list(t.chunk(CHUNKS, dim=1)), target)
    else:
        chunk = chunk_size if impl == "kdsurvey chunked" else None
        ours = create("torchtune_fkl", loss_weight=1.0, chunk_size=chunk)

        def step():
            return ours(s, t, target)

    times, value = [], None
    base = _rss_mb()
    for i in range(repeat + 1):
        s.grad = None
        start = time.perf_counter()
        out = step()
        out.backward()
        elapsed = time.perf_counter() - start
        value = out.item()
        if i:  # the first step warms up
            times.append(elapsed)
    return {
        "peak_mb": _peak_mb() - base,
        "seconds": statistics.median(times),
        "value": value,
        "grad_sum": float(s.grad.double().abs().sum()),
    }


def measure(impl, vocab, dtype, repeat, tt_file, chunk_size) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, "--vocab", str(vocab), "--dtype", dtype]
    cmd += ["--chunk-size", str(chunk_size)]
    cmd += ["--repeat", str(repeat)] + (["--torchtune-file", tt_file] if tt_file else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 128256])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=64, help="positions per chunk (ours)")
    parser.add_argument("--torchtune-file", help="torchtune/modules/loss/kd_losses.py to load")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        got = child(
            args.child, args.vocab[0], args.dtype, args.repeat, args.torchtune_file, args.chunk_size
        )
        print(json.dumps(got))
        return 0

    print(
        f"# Token-level forward KL, B*T = {BATCH * SEQ} positions, {args.dtype}, CPU, 1 thread, "
        f"chunks of {args.chunk_size} positions (ours) vs {CHUNKS} chunks (torchtune)"
    )
    print(f"\n{platform.processor() or platform.machine()}, python {platform.python_version()}\n")
    print("| V | implementation | peak MB | seconds | vs torchtune (memory, time) |")
    print("|---|---|---|---|---|")
    results, ok = {}, True
    for vocab in args.vocab:
        got = {
            impl: measure(
                impl, vocab, args.dtype, args.repeat, args.torchtune_file, args.chunk_size
            )
            for impl in IMPLS
        }
        results[vocab] = got
        ref = got["torchtune chunked"]
        values = [r["value"] for r in got.values() if not r.get("absent")]
        if max(values) - min(values) > 1e-4 * abs(values[0]):
            raise SystemExit(f"V={vocab}: the implementations disagree: {values}")
        for impl, r in got.items():
            if r.get("absent"):
                print(
                    f"| {vocab} | {impl} | absent: install torchtune or pass --torchtune-file | | |"
                )
                continue
            ratio = ""
            if not ref.get("absent") and impl != "torchtune chunked":
                m, t = r["peak_mb"] / ref["peak_mb"], r["seconds"] / ref["seconds"]
                ratio = f"{m:.2f}x, {t:.2f}x"
                if impl == "kdsurvey chunked":
                    ok &= m <= GOAL_MEMORY and t <= GOAL_TIME
            print(f"| {vocab} | {impl} | {r['peak_mb']:.0f} | {r['seconds']:.2f} | {ratio} |")
    if all(not r["torchtune chunked"].get("absent") for r in results.values()):
        verdict = "met" if ok else "NOT met"
        print(f"\nGoal (chunked peak <= torchtune's, time <= {GOAL_TIME}x): {verdict}")
    else:
        print("\ntorchtune absent: the goal was not checked")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
