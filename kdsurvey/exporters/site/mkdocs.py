"""MkDocs: where the site skeleton lives, the configuration, and a strict build swapped in whole.

The skeleton (``mkdocs.yml``, hand-written pages, assets, theme overrides) is package data in
``kdsurvey/website/``, so an installed kdsurvey builds the same site as a checkout. The
repository's root ``mkdocs.yml`` inherits it (``INHERIT``) and only points at its folders, so
``mkdocs`` and ``zensical`` also build from the root; there is one hand-maintained copy.

:func:`build` generates the pages into the configuration's ``docs_dir`` and runs MkDocs in this
process, strict: any warning fails the build, and the previous site stays whole. Without a
configuration file (none given, or no ``mkdocs.yml`` in the working directory), the skeleton is
copied into a temporary project first: an installed package is never written to.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kdsurvey.exporters.site.links import Links
from kdsurvey.exporters.site.pages import GENERATED, Generated, generate
from kdsurvey.exporters.view import View
from kdsurvey.records.catalogue import Catalogue

SKELETON = Path(__file__).resolve().parents[2] / "website"  # package data
CONFIG = SKELETON / "mkdocs.yml"
DEFAULT_CONFIG = "mkdocs.yml"  # the command line's default: ./mkdocs.yml, or else the skeleton
DOCS = "docs"  # the skeleton's docs_dir


class SiteError(Exception):
    """The site stage failed; ``messages`` are the warnings/errors MkDocs reported."""

    def __init__(self, messages: list[str]):
        super().__init__(f"{len(messages)} site error(s)")
        self.messages = messages


def copy_project(dest: Path | str, skeleton: Path | str = SKELETON) -> Path:
    """Copy the skeleton (``mkdocs.yml`` and ``docs/``, not its generated pages) to ``dest``.

    Tests, benchmarks and builds without a configuration file build there, leaving the working
    tree (or the installed package) alone. Returns the copied configuration file.
    """
    skeleton, dest = Path(skeleton), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(skeleton / "mkdocs.yml", dest / "mkdocs.yml")
    docs = skeleton / DOCS
    shutil.copytree(
        docs,
        dest / DOCS,
        dirs_exist_ok=True,
        ignore=lambda folder, names: [
            n for n in names if n == "__pycache__" or (Path(folder) == docs and n == GENERATED)
        ],
    )
    return dest / "mkdocs.yml"


@contextmanager
def project(config_file: Path | str | None) -> Iterator[tuple[Path, dict]]:
    """(configuration file, overrides) to build with; a temporary copy of the skeleton when the
    configuration file is None, or the command line's default and absent."""
    if config_file is not None and not (
        str(config_file) == DEFAULT_CONFIG and not Path(config_file).exists()
    ):
        yield Path(config_file).resolve(), {}
        return
    with tempfile.TemporaryDirectory(prefix="kdsurvey-site.") as tmp:
        # Output and relative paths stay where the command runs, not in the temporary copy.
        yield copy_project(tmp), {"site_dir": str(Path("public").resolve())}


def load_config(config_file: Path | str = CONFIG, **overrides):
    """The MkDocs configuration, with snippet paths made absolute (builds from any directory)."""
    from mkdocs.config import load_config as mkdocs_load_config

    config_file = Path(config_file).resolve()
    config = mkdocs_load_config(str(config_file), **overrides)
    snippets = config.mdx_configs.get("pymdownx.snippets")
    if snippets and "base_path" in snippets:
        paths = snippets["base_path"]
        paths = [paths] if isinstance(paths, str) else paths
        snippets["base_path"] = [str(config_file.parent / p) for p in paths]
    return config


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


def build(
    source: View | Catalogue,
    config_file: Path | str | None = DEFAULT_CONFIG,
    site_dir: Path | str | None = None,
    *,
    strict: bool = True,
    **overrides,
) -> Generated:
    """Generate the pages, then build the site with MkDocs; :class:`SiteError` on any warning.

    ``overrides`` replace settings of the configuration (``site_url=...`` for a local server:
    Material's instant navigation follows only the links its sitemap lists).
    """
    with project(config_file) as (config_file, defaults):
        overrides = {**defaults, **overrides, "strict": strict}
        if site_dir is not None:
            overrides["site_dir"] = str(Path(site_dir).resolve())
        config = load_config(config_file, **overrides)
        generated = generate(source, config.docs_dir, Links.from_config(config))
        start = time.perf_counter()
        swap_in(config)
        generated.site_seconds = time.perf_counter() - start
    return generated


def swap_in(config) -> None:
    """Build beside the output folder and swap it in only when the build passed: a failed build
    leaves the previous site whole, never a half-written one."""
    target = Path(config.site_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a site is for reading
    config["site_dir"] = str(staging)
    try:
        run_mkdocs(config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        config["site_dir"] = str(target)
    previous = staging.with_name(staging.name + ".old")
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)


def run_mkdocs(config, *, fast: bool = True):
    """``mkdocs build`` in this process; warnings (all of them, strict) raise :class:`SiteError`.

    ``fast`` adds :class:`~.fastpath.FastPages` (the same site, built sooner) and
    returns it: its ``rendered`` lists the pages it rendered.
    """
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.exceptions import MkDocsException

    plugin = None
    if fast:
        from kdsurvey.exporters.site.fastpath import install

        plugin = install(config)

    collect = _Collect()
    logger = logging.getLogger("mkdocs")
    logger.addHandler(collect)
    try:
        mkdocs_build(config)
    except MkDocsException as exc:
        raise SiteError([*collect.messages, f"ERROR: {exc}"]) from None
    finally:
        logger.removeHandler(collect)
    if collect.messages and config.strict:
        raise SiteError(collect.messages)
    return plugin
