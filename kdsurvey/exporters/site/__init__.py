"""The website: Markdown pages rendered from the records, then built by MkDocs (Material theme).

One module per concern, each small enough to read at once:

* :mod:`.markdown`: escaping record text into Markdown, HTML, URLs and front matter;
* :mod:`.links`: the repository's edit and blob URLs behind the "edit" and "source" buttons;
* :mod:`.related`: related papers;
* :mod:`.chart`: the home page's papers-per-year chart;
* :mod:`.pages`: :func:`render_pages` (pure) and :func:`generate` (writes changed pages only);
* :mod:`.mkdocs`: the skeleton (package data in ``kdsurvey/website/``), the configuration, and
  :func:`build`: strict, swapped in whole;
* :mod:`.fastpath`: the in-process MkDocs plugin that renders the generated pages (headings plus
  raw HTML) without a Markdown pass over their HTML; the same site, sooner;
* :mod:`.live`: :func:`serve`, live reload with pages regenerated when a record changes.

Everything here is torch-free: what a page says about a loss comes from the losses' manifest
(:mod:`kdsurvey.exporters.loss_facts`), never from the loss modules.
"""

from kdsurvey.exporters.render import md_text, url
from kdsurvey.exporters.site.links import Links
from kdsurvey.exporters.site.live import serve
from kdsurvey.exporters.site.markdown import (
    doc_text,
    fence,
    front_matter,
    html_text,
    mathml,
    slug,
    task_label,
)
from kdsurvey.exporters.site.mkdocs import (
    CONFIG,
    SKELETON,
    SiteError,
    build,
    copy_project,
    load_config,
    run_mkdocs,
)
from kdsurvey.exporters.site.pages import GENERATED, INCLUDES, Generated, generate, render_pages
from kdsurvey.exporters.site.related import RELATED, related

__all__ = [
    "CONFIG",
    "GENERATED",
    "INCLUDES",
    "RELATED",
    "SKELETON",
    "Generated",
    "Links",
    "SiteError",
    "build",
    "copy_project",
    "doc_text",
    "fence",
    "front_matter",
    "generate",
    "html_text",
    "load_config",
    "mathml",
    "md_text",
    "related",
    "render_pages",
    "run_mkdocs",
    "serve",
    "slug",
    "task_label",
    "url",
]
