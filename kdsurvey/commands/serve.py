"""``kdsurvey serve``: generate the pages and serve the site; a changed record regenerates them."""

from __future__ import annotations

import argparse
import sys

from kdsurvey.commands.common import command, load_catalogue


def run(args) -> None:
    from kdsurvey.exporters.site import serve

    load_catalogue(args)  # a catalogue with errors is reported, not served
    serve(
        args.papers,
        args.config,
        args.dev_addr,
        dirty=args.dirty,
        log=lambda message: print(message, file=sys.stderr),
    )


def register(subparsers) -> None:
    p = command(subparsers, "serve", run, "serve the site locally, rebuilt when a record changes")
    p.add_argument(
        "--config",
        default="mkdocs.yml",
        metavar="FILE",
        help="MkDocs configuration (default: mkdocs.yml)",
    )
    p.add_argument(
        "-a",
        "--dev-addr",
        default="127.0.0.1:8000",
        metavar="HOST:PORT",
        help="address to serve on (default: 127.0.0.1:8000)",
    )
    p.add_argument(
        "--dirty",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="rebuild only the pages that changed (the default: an edited record shows in seconds "
        "at 1,000 papers); --no-dirty rebuilds the whole site on every change",
    )
