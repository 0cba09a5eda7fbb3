"""``kdsurvey build``: validate -> README -> site; each stage stops the build with its own errors."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kdsurvey.commands.common import Failure, check_data_files, command, load_catalogue
from kdsurvey.files import write_atomic


def run(args) -> None:
    from kdsurvey.exporters.readme import render
    from kdsurvey.exporters.site import SiteError, build
    from kdsurvey.exporters.view import View

    start = time.perf_counter()
    # validate; loaded once, and viewed once, for the README and the pages
    view = View(load_catalogue(args))
    check_data_files(args, view)
    loaded = time.perf_counter()
    write_atomic(Path(args.readme), render(view))
    readme = time.perf_counter()
    try:
        result = build(view, args.config, args.site_dir)
    except SiteError as exc:
        raise Failure("\n".join(exc.messages) + f"\nsite: {len(exc.messages)} error(s)") from None
    if args.timings:
        print(
            f"validate {loaded - start:.2f}s, readme {readme - loaded:.2f}s, pages "
            f"{result.seconds:.2f}s ({len(result.written)} written, {result.unchanged} unchanged, "
            f"{len(result.removed)} removed), mkdocs {result.site_seconds:.2f}s, "
            f"total {time.perf_counter() - start:.2f}s",
            file=sys.stderr,
        )


def register(subparsers) -> None:
    p = command(subparsers, "build", run, "validate, render the README and build the site")
    p.add_argument(
        "--readme", default="README.md", metavar="FILE", help="README to write (default: README.md)"
    )
    p.add_argument(
        "--config",
        default="mkdocs.yml",
        metavar="FILE",
        help="MkDocs configuration (default: mkdocs.yml)",
    )
    p.add_argument("--site-dir", metavar="DIR", help="output folder (default: site_dir, public/)")
    p.add_argument("--timings", action="store_true", help="print the time of each stage (stderr)")
