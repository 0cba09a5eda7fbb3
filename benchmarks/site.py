"""Site build speed: ``kdsurvey build`` against a bare ``mkdocs build`` of the same pages.

For each size, a synthetic catalogue (:mod:`benchmarks.synthetic`) and a copy of the site skeleton
(``kdsurvey/website/``: ``mkdocs.yml`` + ``docs/``) go into a temporary folder; then, ``--repeat``
times, alternately:

* ``kdsurvey build --timings`` from scratch (generated pages deleted first): validate, README,
  pages, MkDocs; its stage times are printed;
* ``mkdocs build`` of the pages that build generated (the baseline: MkDocs alone).

Both run as subprocesses; wall time and CPU time (user + system of the child) are recorded, the
best of the repeats kept. CPU time is the steadier figure on a shared machine. Targets: at 5,000
papers ``kdsurvey build`` within 1.3x of ``mkdocs build``; 10,000 papers within 2.2x of 5,000.

    python benchmarks/site.py                   # 1,000 and 2,000 papers, plus the real catalogue
    python benchmarks/site.py --sizes 500 1000 --repeat 1
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdsurvey.exporters import site  # noqa: E402

_spec = importlib.util.spec_from_file_location("kd_synthetic", ROOT / "benchmarks/synthetic.py")
synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run ``cmd``; (wall seconds, child CPU seconds, stderr). Fails loudly on a failed build."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, cpu, proc.stderr


def bench(papers: Path, work: Path, repeat: int) -> dict:
    config = site.copy_project(work / "project")
    project = config.parent
    generated = project / "docs" / site.GENERATED
    kd = [
        sys.executable,
        "-m",
        "kdsurvey",
        "build",
        "--papers",
        str(papers),
        "--config",
        str(config),
        "--readme",
        str(work / "README.md"),
        "--site-dir",
        str(work / "out-kd"),
        "--timings",
    ]
    mk = [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "-q",
        "-f",
        str(config),
        "-d",
        str(work / "out-mkdocs"),
    ]
    runs: dict[str, list[tuple[float, float]]] = {"kdsurvey": [], "mkdocs": []}
    stages = ""
    for _ in range(repeat):
        shutil.rmtree(generated, ignore_errors=True)  # a cold build: every page written
        wall, cpu, err = timed(kd, project)
        runs["kdsurvey"].append((wall, cpu))
        stages = err.strip().splitlines()[-1]
        wall, cpu, _ = timed(mk, project)
        runs["mkdocs"].append((wall, cpu))
    best = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in runs.items()
    }
    pages = sum(1 for _ in generated.rglob("*.md"))
    index = work / "out-kd" / "search" / "search_index.json"
    return {"best": best, "stages": stages, "pages": pages, "index": index.stat().st_size}


def report(label: str, result: dict) -> None:
    (kw, kc), (mw, mc) = result["best"]["kdsurvey"], result["best"]["mkdocs"]
    print(
        f"{label}: {result['pages']} generated pages, search index {result['index'] / 1000:.0f} KB"
    )
    print(f"  kdsurvey build  wall {kw:8.1f}s  cpu {kc:8.1f}s   [{result['stages']}]")
    print(f"  mkdocs build    wall {mw:8.1f}s  cpu {mc:8.1f}s")
    print(f"  ratio kdsurvey/mkdocs: wall {kw / mw:.2f}x  cpu {kc / mc:.2f}x  ")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median kept)")
    parser.add_argument("--no-real", action="store_true", help="skip the real catalogue")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    args = parser.parse_args()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kdsurvey-site-"))
    results = {}
    try:
        if not args.no_real:
            report("real catalogue", bench(ROOT / "papers", base / "real", args.repeat))
        for n in args.sizes:
            papers = synthetic.write_catalogue(base / f"n{n}" / "papers", n)
            results[n] = bench(papers, base / f"n{n}", args.repeat)
            report(f"{n} papers", results[n])
            shutil.rmtree(base / f"n{n}" / "out-kd", ignore_errors=True)
            shutil.rmtree(base / f"n{n}" / "out-mkdocs", ignore_errors=True)
        sizes = sorted(results)
        for small, large in zip(sizes, sizes[1:], strict=False):
            (sw, sc), (lw, lc) = (
                results[small]["best"]["kdsurvey"],
                results[large]["best"]["kdsurvey"],
            )
            target = 2.1 * large / small / 2
            print(
                f"growth {small} -> {large} papers: wall {lw / sw:.2f}x  cpu {lc / sc:.2f}x  "
                f"(target <= {target:.1f}x)"
            )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
