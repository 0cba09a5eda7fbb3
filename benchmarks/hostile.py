"""How long ``load`` takes to refuse hostile or odd record files, against ``yaml.safe_load``.

The tests assert what is decided (the located errors); this measures how fast. A 1 KB "billion
laughs" record used to take 60-90 s and 5 GB; a 60 MB ``notes`` was read and accepted.
Usage: ``python benchmarks/hostile.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import GOOD  # noqa: E402
from test_hostile_input import laughs  # noqa: E402

from kdsurvey.records.catalogue import CatalogueError, load  # noqa: E402


def timed(func) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        func()
        outcome = "accepted"
    except CatalogueError as exc:
        outcome = str(exc.problems[0]).rsplit("/", 1)[-1]
    return time.perf_counter() - start, outcome


def main() -> None:
    cases = {
        "billion laughs (1 KB)": laughs(),
        "60 MB notes": GOOD + "notes: " + "x" * 60_000_000 + "\n",
        "deep nesting": "a: " + "[" * 900 + "]" * 900 + "\n",
    }
    print("| case | yaml.safe_load s | load s | outcome |\n|---|---:|---:|---|")
    for name, text in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            papers = Path(tmp) / "papers"
            papers.mkdir()
            for data in ("venues.yaml", "categories.yaml", "tasks.yaml"):
                shutil.copy(ROOT / "papers" / data, papers / data)
            (papers / "x.yaml").write_text(text, encoding="utf-8")
            start = time.perf_counter()
            with contextlib.suppress(yaml.YAMLError):
                yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            plain = time.perf_counter() - start
            seconds, outcome = timed(lambda folder=papers: load(folder, check_losses=False))
            print(f"| {name} | {plain:.3f} | {seconds:.3f} | {outcome} |")


if __name__ == "__main__":
    main()
