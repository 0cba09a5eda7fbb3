"""The ``kdsurvey`` command line: verbs and nouns (``kdsurvey check links``), quiet on success.

Exit codes CI can trust: 0 success, 1 the catalogue (or a check) found problems, 2 bad usage.
Data goes to stdout (``--format json`` for machines); progress and errors go to stderr.
Heavy modules (torch, mkdocs, requests) are imported inside the command that needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from kdsurvey.records.catalogue import Catalogue, CatalogueError, load


class Failure(Exception):
    """A command's clean failure: ``message`` goes to stderr, exit with ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _catalogue(args) -> Catalogue:
    try:
        return load(args.papers)
    except CatalogueError as exc:
        if getattr(args, "format", "text") == "json":
            print(json.dumps({"errors": [p.as_dict() for p in exc.problems]}, indent=2))
            raise Failure("", 1) from None
        raise Failure(
            "\n".join(map(str, exc.problems)) + f"\n{len(exc.problems)} error(s)"
        ) from None


def cmd_validate(args) -> None:
    catalogue = _catalogue(args)
    summary = {
        "papers": len(catalogue.papers),
        "categories": len(catalogue.categories),
        "errors": 0,
    }
    if args.format == "json":
        print(json.dumps(summary))
    else:
        print(f"{summary['papers']} papers, {summary['categories']} categories, 0 errors")


def cmd_readme(args) -> None:
    from kdsurvey.exporters.readme import diff, render
    from kdsurvey.files import write_atomic

    wanted = render(_catalogue(args))
    target = Path(args.output)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != wanted:
            sys.stdout.write(diff(current, wanted, str(target)))
            raise Failure(f"{target} is stale: run `kdsurvey readme` and commit it")
        return
    write_atomic(target, wanted)


def cmd_build(args) -> None:
    """validate -> README -> site; each stage stops the build with its own errors."""
    import time

    from kdsurvey.exporters.readme import render
    from kdsurvey.exporters.site import SiteError, build
    from kdsurvey.files import write_atomic

    start = time.perf_counter()
    catalogue = _catalogue(args)  # validate (loaded once, for the README and the pages)
    loaded = time.perf_counter()
    write_atomic(Path(args.readme), render(catalogue))
    readme = time.perf_counter()
    try:
        result = build(catalogue, args.config, args.site_dir)
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


def cmd_serve(args) -> None:
    """Generate the pages and serve the site; a changed record regenerates them (live reload)."""
    from kdsurvey.exporters.site import serve

    _catalogue(args)  # a catalogue with errors is reported, not served
    serve(
        args.papers,
        args.config,
        args.dev_addr,
        dirty=args.dirty,
        log=lambda message: print(message, file=sys.stderr),
    )


def cmd_schema(args) -> None:
    from kdsurvey.files import write_atomic
    from kdsurvey.records.model import Paper

    text = json.dumps(Paper.model_json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)


def cmd_losses_list(args) -> None:
    import inspect

    from kdsurvey.losses import available, get

    rows = []
    for name in available():
        cls = get(name)
        params = {
            p.name: p.default
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.default is not inspect.Parameter.empty
        }
        rows.append(
            {
                "name": name,
                "paper": cls.paper,
                "family": cls.family,
                "evidence": cls.evidence,
                "class": cls.__name__,
                "parameters": params,
            }
        )
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=repr))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items())
        print(
            f"{r['name']:<{width}}  {r['family']:<10}  {r['evidence']:<9}  {r['paper']:<28}  {params}"
        )


def cmd_losses_verify(args) -> None:
    from kdsurvey.losses.verify import run_dir

    directory = Path(args.directory)
    if not directory.is_dir():
        raise Failure(f"{directory}: no such folder", 2)
    results = run_dir(directory, args.device)
    if not results:
        raise Failure(f"{directory}: no case files (*.json)", 1)
    failed = [r for r in results if not r.passed]
    if args.format == "json":
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        width = max(len(r.method) for r in results)
        cwidth = max(len(r.case) for r in results)
        print(
            f"{'method':<{width}}  {'case':<{cwidth}}  {'|loss diff|':>11}  {'|grad diff|':>11}  result"
        )
        for r in results:
            verdict = "pass" if r.passed else f"FAIL {r.error}".rstrip()
            print(
                f"{r.method:<{width}}  {r.case:<{cwidth}}  {r.loss_diff:>11.3g}  {r.grad_diff:>11.3g}  {verdict}"
            )
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise Failure("", 1)


def cmd_losses_demo(args) -> None:
    from kdsurvey.losses import get
    from kdsurvey.losses.demo import demo

    try:
        get(args.name)
    except KeyError as exc:
        raise Failure(exc.args[0], 2) from None

    def log(step, value):
        print(f"step {step:3d}  loss {value:.6f}")

    values = demo(args.name, steps=args.steps, seed=args.seed, log=log)
    print(f"{args.name}: {values[0]:.6f} -> {values[-1]:.6f}")


def cmd_export(args) -> None:
    """Citations of the selected records to stdout or, atomically, to ``-o FILE``."""
    from kdsurvey.exporters import citations
    from kdsurvey.files import write_atomic

    catalogue = _catalogue(args)
    try:
        papers = citations.select(catalogue, args.category, args.ids, args.year_from)
    except KeyError as exc:
        raise Failure(exc.args[0], 2) from None
    if not papers:
        raise Failure("no record matches the selection (--category, --ids, --year-from)")
    try:
        if args.export_command == "bibtex":
            text = citations.bibtex(catalogue, papers, ascii=args.ascii)
        else:
            text = {
                "csl-json": citations.csl_json,
                "json": citations.as_json,
                "csv": citations.as_csv,
            }[args.export_command](catalogue, papers)
    except citations.CitationError as exc:
        raise Failure(str(exc)) from None
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)


def cmd_import_bibtex(args) -> None:
    """BibTeX entries -> papers/<id>.yaml (or the YAML on stdout with --dry-run)."""
    from kdsurvey.files import write_atomic
    from kdsurvey.importers.bibtex import ImportFailure, Options, import_bibtex
    from kdsurvey.losses.registry import declared_names
    from kdsurvey.records.catalogue import VENUES_FILE, read_table
    from kdsurvey.records.model import Venue

    problems = []
    venues = read_table(Path(args.papers) / VENUES_FILE, Venue, problems)
    if problems:
        raise Failure("\n".join(map(str, problems)))
    unknown = sorted(set(args.loss or ()) - set(declared_names()))
    if unknown:
        raise Failure(f"no loss {', '.join(unknown)} in kdsurvey.losses (kdsurvey losses list)", 2)
    summary = " ".join(args.summary.split()) if args.summary else None
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Failure(f"{args.file}: {exc}", 2) from None
    options = Options(
        args.category,
        list(dict.fromkeys(args.task or ())),
        list(dict.fromkeys(args.loss or ())),
        summary,
    )
    try:
        records = import_bibtex(text, args.papers, venues, options, source=args.file)
    except ImportFailure as exc:
        raise Failure(str(exc) + f"\nnothing written ({len(exc.problems)} problem(s))") from None
    for index, record in enumerate(records):
        if args.dry_run:
            sys.stdout.write(("---\n" if index else "") + record.yaml)
            continue
        write_atomic(record.path, record.yaml)
        todo = f"; fill in {', '.join(record.todo)} (marked TODO)" if record.todo else ""
        print(f"wrote {record.path}{todo}", file=sys.stderr)


def _add_citation_commands(group, command, common) -> None:
    from kdsurvey.records.model import Category
    from kdsurvey.records.writer import add_curation_options

    categories = [c.value for c in Category]
    export = group("export", "citations of the records: BibTeX, CSL-JSON, JSON or CSV")
    for name, what in (
        ("bibtex", "BibTeX (UTF-8 for biber; --ascii for classic bibtex)"),
        ("csl-json", "CSL-JSON, as Zotero and pandoc read it"),
        ("json", "the records as JSON, venues expanded"),
        ("csv", "one CSV row per record"),
    ):
        p = command(export, name, cmd_export, f"export {what}")
        p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
        p.add_argument("--category", choices=categories, help="only this category")
        p.add_argument("--ids", nargs="+", metavar="ID", help="only these record ids")
        p.add_argument("--year-from", type=int, metavar="Y", help="only papers from year Y on")
        if name == "bibtex":
            p.add_argument(
                "--ascii",
                action="store_true",
                help='escape non-ASCII letters ({\\"o}) for classic bibtex',
            )

    imports = group("import", "make records from citations")
    p = command(
        imports,
        "bibtex",
        cmd_import_bibtex,
        "turn BibTeX entries (Google Scholar, DBLP, arXiv) into papers/<id>.yaml",
    )
    p.add_argument("file", metavar="FILE", help="a .bib file, or - for stdin")
    add_curation_options(p)
    p.add_argument("--dry-run", action="store_true", help="print the YAML, write nothing")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--papers", default="papers", metavar="DIR", help="catalogue folder (default: ./papers)"
    )
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    parser = argparse.ArgumentParser(
        prog="kdsurvey",
        description="The knowledge-distillation survey: records, README, site, "
        "citations, checks and reference losses.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name, func, help, parents=(common,)):
        p = parent.add_parser(name, help=help, description=help, parents=list(parents))
        p.set_defaults(func=func)
        return p

    def group(name, help):
        p = sub.add_parser(name, help=help, description=help)
        return p.add_subparsers(dest=f"{name}_command", required=True, metavar="NOUN")

    command(sub, "validate", cmd_validate, "validate every record", (common, fmt))
    p = command(sub, "readme", cmd_readme, "render README.md from the records")
    p.add_argument("--check", action="store_true", help="exit 1 with a diff if the file is stale")
    p.add_argument("-o", "--output", default="README.md", metavar="FILE")
    p = command(sub, "build", cmd_build, "validate, render the README and build the site")
    p.add_argument("--readme", default="README.md", metavar="FILE", help="README to write")
    p.add_argument("--config", default="mkdocs.yml", metavar="FILE", help="MkDocs configuration")
    p.add_argument("--site-dir", metavar="DIR", help="output folder (default: site_dir, public/)")
    p.add_argument("--timings", action="store_true", help="print the time of each stage (stderr)")
    p = command(sub, "serve", cmd_serve, "serve the site locally, rebuilt when a record changes")
    p.add_argument("--config", default="mkdocs.yml", metavar="FILE", help="MkDocs configuration")
    p.add_argument("-a", "--dev-addr", default="127.0.0.1:8000", metavar="HOST:PORT")
    p.add_argument("--dirty", action="store_true", help="rebuild only the pages that changed")
    p = command(sub, "schema", cmd_schema, "print the JSON Schema of a paper record", ())
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    losses = group("losses", "the reference loss implementations (needs the losses extra)")
    command(losses, "list", cmd_losses_list, "list registered losses", (fmt,))
    p = command(
        losses, "verify", cmd_losses_verify, "run reference case files against the losses", (fmt,)
    )
    p.add_argument("directory", metavar="DIR", help="folder of case files (*.json)")
    p.add_argument("--device", default="cpu", help="torch device to run on, e.g. cuda")
    p = command(losses, "demo", cmd_losses_demo, "train a tiny student with a loss", ())
    p.add_argument("name", help="registry name, e.g. dkd")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)

    # -- commands added by the feature modules below (site, citations, checks) --
    _add_citation_commands(group, command, common)
    from kdsurvey.checks import links, metadata
    from kdsurvey.importers import newpaper  # light: requests loads when a check runs

    check = group("check", "checks beyond validation: dead links, metadata")
    links.add_arguments(command(check, "links", links.cli, links.HELP, (common, fmt)))
    metadata.add_arguments(command(check, "metadata", metadata.cli, metadata.HELP, (common, fmt)))
    newpaper.add_arguments(command(sub, "new", newpaper.cli, newpaper.HELP, (common, fmt)))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except Failure as exc:
        if str(exc):
            print(str(exc), file=sys.stderr)
        return exc.code
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            print("this command needs torch: pip install 'kdsurvey[losses]'", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kdsurvey ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
