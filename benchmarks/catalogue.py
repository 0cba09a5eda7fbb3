"""Load + validate and README render on a large synthetic catalogue.

Targets (issue #2): 10,000 records load and validate in under 1 s with libyaml's CSafeLoader, and
the README renders in under 0.5 s. The pure-Python YAML loader is measured in the same run as the
baseline. Usage: ``python benchmarks/catalogue.py [N]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import write_catalogue  # noqa: E402

import kdsurvey.records.catalogue as catalogue_module  # noqa: E402
from kdsurvey.exporters.readme import render  # noqa: E402
from kdsurvey.records.catalogue import load  # noqa: E402
from kdsurvey.records.yamlsource import FastLoader, PureLoader  # noqa: E402


def best_of(func, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main(count: int = 10_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        papers = write_catalogue(Path(tmp) / "papers", count)
        load(papers)  # warm the file cache
        fast, fast_med, catalogue = best_of(lambda: load(papers, loader=FastLoader))
        parallel_from, catalogue_module.PARALLEL_FROM = catalogue_module.PARALLEL_FROM, count + 1
        one, one_med, _ = best_of(lambda: load(papers, loader=FastLoader), repeat=3)
        pure, pure_med, _ = best_of(lambda: load(papers, loader=PureLoader), repeat=3)
        catalogue_module.PARALLEL_FROM = parallel_from
        readme, readme_med, _ = best_of(lambda: render(catalogue))
    print(f"{count} records  (best / median of runs)")
    print(f"load+validate, libyaml loader : {fast:6.3f} s / {fast_med:6.3f} s   target < 1 s")
    print(f"  the same in one process     : {one:6.3f} s / {one_med:6.3f} s")
    print(
        f"load+validate, pure-Python    : {pure:6.3f} s / {pure_med:6.3f} s   "
        f"(baseline, one process; the libyaml load is {pure / fast:.1f}x faster)"
    )
    print(f"README render                 : {readme:6.3f} s / {readme_med:6.3f} s   target < 0.5 s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
