"""Render ``README.md`` from the catalogue through ``kdsurvey/templates/README.md.j2``.

What the README shows besides the records (counts, the survey, the arena, the site's address)
comes from the build's :class:`~kdsurvey.exporters.view.View`, the one the site pages get too.
Loss facts (source module, evidence) come from the losses' manifest, never from their source.
"""

from __future__ import annotations

import difflib

from kdsurvey.exporters import arena_page
from kdsurvey.exporters.leaderboard import readme_tables
from kdsurvey.exporters.render import environment, newest_first
from kdsurvey.exporters.view import View
from kdsurvey.losses import conventions
from kdsurvey.records.catalogue import Catalogue


def render(source: View | Catalogue) -> str:
    """The README text for the catalogue; same catalogue, same bytes."""
    view = View.of(source)
    catalogue, counts, url = view.catalogue, view.counts, view.site_url
    sections = [
        (key, info, newest_first(catalogue.in_category(key)))
        for key, info in catalogue.categories.items()
    ]
    arena = view.arena
    return (
        environment()
        .get_template("README.md.j2")
        .render(
            catalogue=catalogue,
            sections=sections,
            venues=catalogue.venues,
            with_code=counts.with_code,
            years=sorted(counts.years.items()),
            losses=counts.losses,
            evidence=counts.evidence,
            own_code=counts.own_code,
            results=readme_tables(catalogue, url),
            unconfirmed=counts.unconfirmed,
            help_url=view.help_url,
            survey=view.survey,
            arena=arena_page.completeness(arena) if arena else None,
            arena_url=f"{url}/catalogue/arena/" if url else "",
            language=view.language_arena,
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
