"""``kdsurvey serve``: MkDocs' live-reloading server, with the pages regenerated on record changes."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from kdsurvey.exporters.render import environment
from kdsurvey.exporters.site.links import Links
from kdsurvey.exporters.site.mkdocs import DEFAULT_CONFIG, load_config, project
from kdsurvey.exporters.site.pages import generate


class _Regenerator:
    """Regenerate the pages (debounced) when a record, a data file or a template changes."""

    def __init__(self, papers: Path, docs_dir: Path, links: Links, log):
        self.papers, self.docs_dir, self.links, self.log = papers, docs_dir, links, log
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._templates_changed = False

    def changed(self, path: str) -> None:
        if not path.endswith((".yaml", ".j2")) or Path(path).name.startswith("."):
            return
        with self._lock:
            self._templates_changed |= path.endswith(".j2")
            if self._timer:
                self._timer.cancel()
            self._timer = threading.Timer(0.3, self.run)
            self._timer.daemon = True
            self._timer.start()

    def run(self) -> None:
        from kdsurvey.records.catalogue import CatalogueError, load

        with self._lock:
            templates_changed, self._templates_changed = self._templates_changed, False
        if templates_changed:  # recompiling them all costs a third of a second: only when edited
            environment.cache_clear()
        try:
            catalogue = load(self.papers)
        except CatalogueError as exc:
            self.log(
                "\n".join(map(str, exc.problems)) + f"\n{len(exc.problems)} error(s); "
                "the site keeps the last valid pages"
            )
            return
        try:
            result = generate(catalogue, self.docs_dir, self.links)
        except Exception as exc:  # noqa: BLE001 - a template error must not stop the server
            self.log(f"page generation failed: {exc}")
            return
        if result.written or result.removed:
            self.log(f"regenerated {len(result.written)} page(s), removed {len(result.removed)}")


def serve(
    papers: Path | str = "papers",
    config_file: Path | str | None = DEFAULT_CONFIG,
    dev_addr: str = "127.0.0.1:8000",
    *,
    dirty: bool = True,
    log=print,
) -> None:
    """Generate the pages, then ``mkdocs serve`` with live reload; regenerate on record changes.

    ``dirty`` (the default) rebuilds only the changed pages: the navigation lists no paper page,
    so a record's edit changes only its own page and the listing pages that show it.
    """
    from mkdocs.commands.serve import serve as mkdocs_serve
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    from kdsurvey.records.catalogue import load
    from kdsurvey.tempdirs import private_tempdir

    papers = Path(papers).resolve()
    # MkDocs builds into a tempfile.mkdtemp("mkdocs_") folder: keep it, and any other temporary
    # folder, in one of ours that goes even when the server is stopped with SIGTERM
    with private_tempdir("kdsurvey-serve-"), project(config_file) as (config_file, _):
        config = load_config(config_file)
        docs_dir = Path(config.docs_dir)
        links = Links.from_config(config)
        generate(load(papers), docs_dir, links)
        regen = _Regenerator(papers, docs_dir, links, log)

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if not event.is_directory:
                    regen.changed(str(getattr(event, "dest_path", "") or event.src_path))

        observer = Observer()
        handler = Handler()
        observer.schedule(handler, str(papers), recursive=False)
        templates = Path(environment().loader.searchpath[0])
        observer.schedule(handler, str(templates), recursive=True)
        observer.daemon = True
        observer.start()
        logger = logging.getLogger("mkdocs")
        if not logger.handlers:  # the mkdocs CLI would: show "Serving on ..." and rebuilds
            handler_ = logging.StreamHandler()
            handler_.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
            logger.addHandler(handler_)
            logger.setLevel(logging.INFO)
        os.chdir(config_file.parent)  # mkdocs resolves snippet paths from the working directory
        try:
            # A dirty build rebuilds only the pages whose source is newer than their output (pages
            # are written only when they change), and MkDocs warns that it is dirty: strict would
            # turn that warning into a failed rebuild, so strict applies to full builds only.
            mkdocs_serve(
                str(config_file),
                dev_addr=dev_addr,
                build_type="dirty" if dirty else None,
                **({"strict": False} if dirty else {}),
            )
        finally:
            observer.stop()
