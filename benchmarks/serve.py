"""``kdsurvey serve``: seconds from saving an edited record to the server giving its new page.

A synthetic catalogue (:mod:`benchmarks.synthetic`) of each size is served from a copy of the site
skeleton; once the first build is up, one record's summary is rewritten ``--edits`` times, and
each time the paper's page is fetched every 50 ms until it shows the new words. Target: at most
2 s at 1,000 papers. The server's own timings of each rebuild are in its log (``--log``).

    python benchmarks/serve.py                 # 1,000 papers, 5 edits
    python benchmarks/serve.py --sizes 200 1000 --edits 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdsurvey.exporters import site  # noqa: E402
from kdsurvey.records.reading import DATA_FILES, SURVEY_FILE  # noqa: E402

_spec = importlib.util.spec_from_file_location("kd_synthetic", ROOT / "benchmarks/synthetic.py")
synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
            return response.read().decode("utf-8")
    except OSError:
        return None


def bench(n: int, work: Path, edits: int, log: Path | None) -> list[float]:
    papers = synthetic.write_catalogue(work / "papers", n)
    config = site.copy_project(work / "project")
    port = _port()
    record = sorted(
        p for p in papers.glob("*.yaml") if p.name not in DATA_FILES and p.name != SURVEY_FILE
    )[n // 2]
    cmd = [sys.executable, "-m", "kdsurvey", "serve", "--papers", str(papers)]
    cmd += ["--config", str(config), "--dev-addr", f"127.0.0.1:{port}"]
    err = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=err,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}/kdsurvey/catalogue/papers/{record.stem}/"
    times = []
    try:
        deadline = time.monotonic() + 600
        while _get(url) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not come up")
            time.sleep(0.2)
        time.sleep(2)  # let the watcher settle after the first build
        for i in range(edits):
            token = f"benchmark-edit-{i}-{time.time_ns()}"
            text = record.read_text(encoding="utf-8")
            start = time.perf_counter()
            record.write_text(re.sub(r"summary: .*", f"summary: {token}.", text), encoding="utf-8")
            while token not in (_get(url) or ""):
                if time.perf_counter() - start > 120:
                    raise SystemExit("the edit never showed")
                time.sleep(0.05)
            times.append(time.perf_counter() - start)
            time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if log:
            err.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--log", metavar="FILE", help="write the server's log here")
    args = parser.parse_args()
    for n in args.sizes:
        work = Path(tempfile.mkdtemp(prefix="kdsurvey-serve-bench-"))
        try:
            times = bench(n, work, args.edits, Path(args.log) if args.log else None)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        shown = " / ".join(f"{t:.2f}" for t in times)
        print(f"{n} papers: edit to page {shown} s, median {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
