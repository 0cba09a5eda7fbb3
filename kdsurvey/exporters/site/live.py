"""``kdsurvey serve``: MkDocs' live-reloading server over the generated pages.

One loop, MkDocs' own (:class:`mkdocs.livereload.LiveReloadServer`), watches the records, the
templates and the hand-written pages; each rebuild first regenerates the pages whose text changed
(:class:`Regenerator`: records reloaded only when one changed, each paper page re-rendered only
when what it shows changed), then runs MkDocs in this process with the fast path
(:mod:`.fastpath`), dirty by default: only the pages whose source changed are rendered again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from kdsurvey.exporters.render import environment
from kdsurvey.exporters.site.links import Links
from kdsurvey.exporters.site.mkdocs import DEFAULT_CONFIG, load_config, project
from kdsurvey.exporters.site.pages import GENERATED, generate
from kdsurvey.exporters.view import View


def _snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file under ``folders``: what tells a rebuild whether to reload."""
    return {
        str(f): (s.st_mtime_ns, s.st_size)
        for folder in folders
        if folder.is_dir()
        for f in folder.rglob("*")
        if f.is_file() and not f.name.startswith(".") and (s := f.stat())
    }


class Regenerator:
    """Regenerate the pages when a record, a data file or a template changed since the last call.

    Rendered paper pages are remembered between calls (the :class:`View`'s ``memo``),
    so an edited record costs its own page and the listing pages, not the whole catalogue.
    """

    def __init__(self, papers: Path, docs_dir: Path, links: Links, log):
        self.papers, self.docs_dir, self.links, self.log = papers, docs_dir, links, log
        self.templates = Path(environment().loader.searchpath[0])
        self._seen: dict[str, tuple[int, int]] = {}
        self._memo: dict = {}

    def __call__(self) -> None:
        from kdsurvey.records.catalogue import CatalogueError, load

        seen, previous = _snapshot(self.papers, self.templates), self._seen or {}
        if seen == previous:
            return
        changed = {f for f in seen.keys() | previous.keys() if seen.get(f) != previous.get(f)}
        self._seen = seen
        if any(not f.startswith(str(self.papers)) or not _is_record(Path(f)) for f in changed):
            self._memo.clear()  # a data file or a template: every page may change
        try:
            catalogue = load(self.papers)
        except CatalogueError as exc:
            self.log(
                "\n".join(map(str, exc.problems)) + f"\n{len(exc.problems)} error(s); "
                "the site keeps the last valid pages"
            )
            return
        try:
            result = generate(View(catalogue, self._memo), self.docs_dir, self.links)
        except Exception as exc:  # noqa: BLE001 - a template error must not stop the server
            self.log(f"page generation failed: {exc}")
            return
        if result.written or result.removed:
            self.log(f"regenerated {len(result.written)} page(s), removed {len(result.removed)}")


class _QuietDirty(logging.Filter):
    """Drops MkDocs' warning that a dirty build is being performed: ``kdsurvey serve`` builds
    dirty by default and says so in its help (``--no-dirty``); repeated on every rebuild, the
    warning would bury the messages that matter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "'dirty' build is being performed" not in record.getMessage()


def _is_record(path: Path) -> bool:
    from kdsurvey.records.reading import DATA_FILES

    return path.suffix == ".yaml" and path.name not in DATA_FILES


def serve(
    papers: Path | str = "papers",
    config_file: Path | str | None = DEFAULT_CONFIG,
    dev_addr: str = "127.0.0.1:8000",
    *,
    dirty: bool = True,
    log=print,
) -> None:
    """Generate the pages and serve the site with live reload until interrupted.

    ``dirty`` (the default) rebuilds only the changed pages: the navigation lists no paper page,
    so a record's edit changes only its own page and the listing pages that show it. A dirty
    build is not strict; MkDocs' warning that it is dirty is left out (:class:`_QuietDirty`).
    """
    papers = Path(papers).resolve()
    quiet = _QuietDirty()
    logging.getLogger("mkdocs.commands.build").addFilter(quiet)
    try:
        _serve(papers, config_file, dev_addr, dirty, log)
    finally:
        logging.getLogger("mkdocs.commands.build").removeFilter(quiet)


def _serve(papers: Path, config_file, dev_addr: str, dirty: bool, log) -> None:
    """:func:`serve`, with MkDocs' loggers set up."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.livereload import LiveReloadServer

    from kdsurvey.exporters.site.fastpath import install
    from kdsurvey.tempdirs import private_tempdir

    logger = logging.getLogger("mkdocs")
    if not logger.handlers:  # the mkdocs CLI would: show "Serving on ..." and rebuilds
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    # a SIGTERM removes the built site, and any other temporary folder, with ours
    with private_tempdir("kdsurvey-serve-") as tmp, project(config_file) as (config_file, _):
        site_dir = tempfile.mkdtemp(prefix="site-", dir=tmp)
        overrides = {"site_dir": site_dir, "dev_addr": dev_addr}
        if dirty:
            overrides["strict"] = False

        def get_config():
            config = load_config(config_file, **overrides)
            install(config)
            return config

        config = get_config()
        config.plugins.on_startup(command="serve", dirty=dirty)
        host, port = config.dev_addr
        mount = urlsplit(config.site_url or "/").path
        mount = "/" + mount.strip("/") + "/" if mount.strip("/") else "/"
        serve_url = f"http://{host}:{port}{mount}"
        docs_dir = Path(config.docs_dir)
        regenerate = Regenerator(papers, docs_dir, Links.from_config(config), log)

        def builder(config=None):
            regenerate()
            if config is None:
                config = get_config()
            config.site_url = serve_url
            mkdocs_build(config, serve_url=serve_url, dirty=dirty)

        server = LiveReloadServer(  # polled every 0.25 s (MkDocs: 0.5 s): the edit shows sooner
            builder=builder,
            host=host,
            port=port,
            root=site_dir,
            mount_path=mount,
            polling_interval=0.25,
        )

        def error_page(code: int) -> bytes | None:
            page = Path(site_dir) / f"{code}.html"
            return page.read_bytes() if code in (404, 500) and page.is_file() else None

        server.error_handler = error_page
        os.chdir(config_file.parent)  # mkdocs resolves snippet paths from the working directory
        try:
            builder(config)
            # the records, templates and hand-written pages; the generated pages are ours to
            # write, and watching them would rebuild twice per edit
            for path in [papers, regenerate.templates, config_file]:
                server.watch(str(path))
            for child in docs_dir.iterdir():
                if child.name != GENERATED:
                    server.watch(str(child))
            server = config.plugins.on_serve(server, config=config, builder=builder)
            try:
                server.serve()
            except KeyboardInterrupt:
                logger.info("Shutting down...")
            finally:
                server.shutdown()
        finally:
            config.plugins.on_shutdown()
