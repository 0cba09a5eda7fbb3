"""Which papers a page points to next: related papers, from real relations between records."""

from __future__ import annotations

import bisect
from collections import defaultdict

from kdsurvey.exporters.site.markdown import doc_escape, task_label
from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.model import Paper

RELATED = 6  # related papers shown on a paper page


def _extends(catalogue: Catalogue) -> dict[str, dict[str, str]]:
    """paper id -> {paper id it builds on: the loss that says so}, from the losses' manifest.

    A loss whose name joins another paper's loss name (``sdd_dkd``, ``lskd_dkd``: SDD and logit
    standardisation applied to DKD) builds on that paper.
    """
    from kdsurvey.exporters.loss_facts import loss_facts

    facts = {name: info for name, info in loss_facts(catalogue).items() if info}
    owner = {name: info.paper for name, info in facts.items()}
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for name, info in facts.items():
        for part in name.split("_"):
            base = owner.get(part)
            if part not in (name, "kd") and base and base != info.paper:
                found[info.paper].setdefault(base, f"builds on its loss `{part}` (`{name}`)")
    return found


def _window(bucket: list[Paper], keys: list[tuple], p: Paper) -> list[Paper]:
    index = bisect.bisect_left(keys, (p.year, p.id))
    return bucket[max(0, index - RELATED) : index + RELATED + 1]


def related(catalogue: Catalogue) -> dict[str, list[tuple[Paper, str]]]:
    """Up to RELATED (paper, why) per paper, from real relations, strongest first; O(n log n).

    A paper that builds on the other's loss (or is built on) comes first, then papers naming the
    same loss, then papers of the same category sharing a task; ties go to the nearest year.
    Candidates come from a window around the paper's year in each year-sorted bucket, so the
    work per paper is bounded whatever the catalogue's size.
    """
    by_id = {p.id: p for p in catalogue.papers}
    extends = _extends(catalogue)
    built_on: dict[str, dict[str, str]] = defaultdict(dict)
    for pid, bases in extends.items():
        for base, why in bases.items():
            built_on[base].setdefault(pid, why.replace("builds on its", "its loss is built on by"))
    buckets: dict[tuple[str, str], list[Paper]] = defaultdict(list)
    for p in catalogue.papers:
        for t in p.tasks:
            buckets[("task", p.category.value, t)].append(p)
        for name in p.loss:
            buckets[("loss", name)].append(p)
    keys = {}
    for key, papers in buckets.items():
        papers.sort(key=lambda p: (p.year, p.id))
        keys[key] = [(p.year, p.id) for p in papers]
    found = {}
    for p in catalogue.papers:
        scores: dict[str, list] = {}

        def add(q: Paper, score: int, why: str, p=p, scores=scores) -> None:
            if q.id == p.id:
                return
            entry = scores.setdefault(q.id, [0, [], q])
            entry[0] += score
            entry[1].append(why)

        for base, why in extends.get(p.id, {}).items():
            if base in by_id:
                add(by_id[base], 100, why.replace("its loss", "the loss"))
        for user, why in built_on.get(p.id, {}).items():
            if user in by_id:
                add(by_id[user], 100, why.replace("its loss is", "this paper's loss is"))
        for name in p.loss:
            key = ("loss", name)
            for q in _window(buckets[key], keys[key], p):
                add(q, 10, f"also uses `{name}`")
        shared: dict[str, list[str]] = defaultdict(list)
        for t in p.tasks:
            key = ("task", p.category.value, t)
            for q in _window(buckets[key], keys[key], p):
                shared[q.id].append(doc_escape(task_label(t, catalogue.tasks)))
        for qid, tasks in shared.items():
            add(by_id[qid], len(tasks), "same category, also on " + " and ".join(tasks))
        best = sorted(scores.values(), key=lambda e: (-e[0], abs(e[2].year - p.year), e[2].id))
        found[p.id] = [(e[2], "; ".join(e[1])) for e in best[:RELATED]]
    return found
