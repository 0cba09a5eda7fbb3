"""Render ``README.md`` from the catalogue through ``kdsurvey/templates/README.md.j2``.

Loss facts (source module, evidence) come from the losses' manifest, never from their source.
"""

from __future__ import annotations

import difflib
from collections import Counter

from kdsurvey.exporters import arena_page
from kdsurvey.exporters.leaderboard import readme_tables, site_url
from kdsurvey.exporters.loss_facts import evidence_counts, facts
from kdsurvey.exporters.render import environment, newest_first
from kdsurvey.exporters.site.evidence import against_authors_code
from kdsurvey.losses import conventions
from kdsurvey.records import survey
from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.unknowns import help_url


def render(catalogue: Catalogue) -> str:
    """The README text for ``catalogue``; same catalogue, same bytes."""
    sections = [
        (key, info, newest_first(catalogue.in_category(key)))
        for key, info in catalogue.categories.items()
    ]
    years = Counter(p.year for p in catalogue.papers)
    losses, evidence = evidence_counts(catalogue)
    papers = {p.id: p for p in catalogue.papers}
    named = sorted({name for p in catalogue.papers for name in p.loss})
    proven = [info for info in map(facts, named) if info and info.evidence == "reference"]
    own = sum(1 for info in proven if against_authors_code(info, papers.get(info.paper)))
    try:  # the sentence about the survey only where its file names this catalogue's records
        seed = survey.load(catalogue.root / survey.SURVEY_FILE, (p.id for p in catalogue.papers))
    except survey.SurveyError:  # `validate` and `build` report it; other catalogues have none
        seed = None
    arena = arena_page.load(arena_page.results_path(catalogue))
    url = site_url()
    return (
        environment()
        .get_template("README.md.j2")
        .render(
            catalogue=catalogue,
            sections=sections,
            venues=catalogue.venues,
            with_code=sum(1 for p in catalogue.papers if p.links.code),
            years=sorted(years.items()),
            losses=losses,
            evidence=evidence,
            own_code=own,
            results=readme_tables(catalogue, site_url()),
            unconfirmed=sum(1 for p in catalogue.papers if p.unconfirmed),
            help_url=help_url(),
            survey=seed,
            arena=arena_page.completeness(arena) if arena else None,
            arena_url=f"{url.rstrip('/')}/catalogue/arena/" if url else "",
            conventions=conventions.load(),
        )
    )


def diff(current: str, wanted: str, path: str) -> str:
    """Unified diff from the file on disk to what the records render."""
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            fromfile=f"{path} (committed)",
            tofile=f"{path} (rendered from the records)",
        )
    )
