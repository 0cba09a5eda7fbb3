"""The site's "Help wanted" page: every record's unconfirmed fields (``catalogue/help.md``)."""

from __future__ import annotations

from kdsurvey.records.unknowns import unknowns, with_unknowns


def render_help(env, catalogue, links) -> str:
    """The page's Markdown: one section per record with unconfirmed fields, sorted by id, each
    with its sentences, the publisher's link and an "edit on GitHub" link to the record."""
    papers = with_unknowns(catalogue.papers)
    return env.get_template("site/help.md.j2").render(
        papers=papers,
        unknowns=unknowns(catalogue.papers),
        venues=catalogue.venues,
        edits={p.id: links.edit(catalogue.path_of(p)) for p in papers},
    )
