"""Synthetic catalogues of any size, for benchmarks: valid records with varied fields.

``python benchmarks/synthetic.py DIR N`` writes N records plus the real data files (venues, categories, ...).
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path
from string import ascii_lowercase

import yaml

from kdsurvey.records.catalogue import loss_names
from kdsurvey.records.model import Category, citation_key
from kdsurvey.records.reading import DATA_FILES, SURVEY_FILE

ROOT = Path(__file__).resolve().parent.parent
#: The real catalogue's tasks (papers/tasks.yaml), which synthetic records draw from.
TASKS = sorted(yaml.safe_load((ROOT / "papers" / "tasks.yaml").read_text(encoding="utf-8")))
WORDS = [
    "distilling",
    "knowledge",
    "teacher",
    "student",
    "logit",
    "feature",
    "relation",
    "attention",
    "channel",
    "spatial",
    "contrastive",
    "decoupled",
    "adaptive",
    "dense",
    "structured",
    "graph",
    "calibrated",
    "masked",
    "generative",
    "progressive",
    "cross",
    "layer",
    "semantic",
    "efficient",
    "compact",
    "robust",
]
FAMILIES = [
    "Zhang",
    "Wang",
    "Li",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "Lin",
    "He",
    "Park",
    "Kim",
]
GIVEN = [
    "Wei",
    "Jie",
    "Yu",
    "Hao",
    "Min",
    "Lei",
    "Tao",
    "Xin",
    "Jun",
    "Yan",
    "Seo",
    "Ji",
    "Anna",
    "Luca",
    "Omar",
]
VENUES = ["cvpr", "iccv", "eccv", "neurips", "iclr", "aaai", "ijcai", "arxiv", "tpami", "tip"]


def record(index: int, rng: random.Random, losses: list[str]) -> tuple[str, str]:
    """One record's id and YAML text; index makes titles and ids unique."""
    authors = [f"{rng.choice(FAMILIES)}, {rng.choice(GIVEN)}" for _ in range(rng.randint(1, 8))]
    year = rng.randint(2014, 2025)
    title = f"{rng.choice(WORDS).capitalize()} {' '.join(rng.sample(WORDS, 5))} {index}"
    key = citation_key(authors[0], year, title)
    tasks = sorted(rng.sample(TASKS, rng.randint(1, 3)))
    arxiv = (
        f"{(year % 100):02d}{rng.randint(1, 12):02d}.{index % 100000:05d}" if year >= 2015 else None
    )
    lines = [
        "# yaml-language-server: $schema=schema.json",
        f"id: {key}",
        f"title: {title}",
        "authors:",
        *[f"  - {a}" for a in authors],
        f"year: {year}",
        f"venue: {rng.choice(VENUES)}",
        f"category: {rng.choice([c.value for c in Category])}",
        f"tasks: [{', '.join(tasks)}]",
        "links:",
        f"  paper: https://example.org/paper/{index}",
    ]
    if arxiv:
        lines.append(f'  arxiv: "{arxiv}"')
    if rng.random() < 0.6:
        lines += [f"  code: https://github.com/owner{index}/repo{index}", "  code_official: true"]
    lines += [
        f"loss: {rng.choice(losses)}",
        "summary: The student matches a synthetic quantity of the teacher for benchmarking.",
    ]
    return key, "\n".join(lines) + "\n"


def write_catalogue(directory: Path, count: int, seed: int = 0) -> Path:
    """Write ``count`` valid records plus the real data files into ``directory``.

    Colliding keys get a letter suffix, as the id rule allows, so any size up to about 170,000 fits.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in sorted(DATA_FILES - {SURVEY_FILE}):  # the survey names the real records
        shutil.copy(ROOT / "papers" / name, directory / name)
    rng = random.Random(seed)
    losses = sorted(loss_names()) or ["kd"]
    written, index = set(), 0
    while len(written) < count:
        key, text = record(index, rng, losses)
        index += 1
        record_id = next(
            (k for k in (key, *(key + c for c in ascii_lowercase)) if k not in written), None
        )
        if record_id is None:
            continue
        written.add(record_id)
        text = text.replace(f"id: {key}\n", f"id: {record_id}\n", 1)
        (directory / f"{record_id}.yaml").write_text(text, encoding="utf-8")
    return directory


if __name__ == "__main__":
    write_catalogue(Path(sys.argv[1]), int(sys.argv[2]))
