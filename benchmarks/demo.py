"""Time ``kdsurvey losses demo`` (a tiny student, 30 steps) for every registered loss.

The tests check that each demo's loss goes down; how long it takes is measured here, since a
test must not depend on the machine's speed. Usage: ``python benchmarks/demo.py [NAME ...]``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdsurvey.losses import available  # noqa: E402
from kdsurvey.losses.demo import demo  # noqa: E402


def main(names: list[str]) -> None:
    names = names or available()
    demo("kd", steps=1)  # one-off autograd/optimiser initialisation
    times = {}
    for name in names:
        start = time.perf_counter()
        demo(name)
        times[name] = time.perf_counter() - start
    print("| loss | seconds |\n|---|---:|")
    for name, seconds in sorted(times.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds:.3f} |")
    values = list(times.values())
    print(
        f"\n{len(values)} demos: median {statistics.median(values):.3f} s, max {max(values):.3f} s"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
