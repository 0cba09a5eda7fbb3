"""Citations out: BibTeX that parses back to the records and compiles, CSL-JSON, JSON and CSV.

Run on the real catalogue (every record must export and round trip) and on the tricky fixture
catalogue in tests/fixtures/citations (accents, ``&`` in a venue, braces and LaTeX specials in a
title, one author, twenty authors, an arXiv-only paper, journal papers, an AAAI volume+number).
The LaTeX tests are marked ``tex`` and skip where pdflatex/bibtex/biber are missing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import bibtexparser
import pytest
from bibtexparser.middlewares.names import (
    parse_single_name_into_parts,
    split_multiple_persons_names,
)
from conftest import PAPERS, ROOT
from pylatexenc.latex2text import LatexNodes2Text

from kdsurvey.cli import main
from kdsurvey.exporters import citations
from kdsurvey.records.catalogue import load
from kdsurvey.records.model import VenueKind

FIXTURES = ROOT / "tests" / "fixtures" / "citations"
TEX_TOOLS = ("pdflatex", "bibtex", "biber")


@pytest.fixture(scope="module")
def real():
    return load(PAPERS, check_losses=False)  # the loss registry is tested elsewhere


@pytest.fixture(scope="module")
def tricky():
    return load(FIXTURES, check_losses=False)


@pytest.fixture(scope="module", params=["real", "tricky"])
def catalogue(request):
    return request.getfixturevalue(request.param)


_decoder = LatexNodes2Text(math_mode="text")


def decode(value: str) -> str:
    """LaTeX -> text with pylatexenc (independent of the exporter's own code)."""
    return " ".join(_decoder.latex_to_text(value).split())


def decode_authors(value: str) -> list[str]:
    """A BibTeX author list as 'Family, Given', split by bibtexparser's BibTeX name rules."""
    names = []
    for raw in split_multiple_persons_names(value):
        parts = parse_single_name_into_parts(raw)
        names.append(f"{decode(' '.join(parts.von + parts.last))}, {decode(' '.join(parts.first))}")
    return names


def parse_back(text: str) -> dict[str, dict[str, str]]:
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks, [b.error for b in library.failed_blocks]
    return {
        e.key: {"@type": e.entry_type, **{f.key: f.value for f in e.fields}}
        for e in library.entries
    }


def expected(paper, venue) -> dict[str, str]:
    """What the BibTeX entry of a record must say, field by field (text fields as plain text)."""
    want = {
        "@type": {
            VenueKind.conference: "inproceedings",
            VenueKind.journal: "article",
            VenueKind.preprint: "misc",
        }[venue.kind],
        # a list that unconfirmed.authors calls partial ends in "and others"
        "author": paper.authors
        + ["others, "] * bool(paper.authors and "authors" in paper.unconfirmed),
        "title": re.sub(r"[{}]", "", paper.title),  # a record's {...} group is protection
        "year": str(paper.year),
        "url": str(paper.links.paper),
    }
    if venue.kind == VenueKind.conference:
        want["booktitle"] = venue.name
    elif venue.kind == VenueKind.journal:
        want["journal"] = venue.name
    else:
        want.update(
            howpublished=f"arXiv preprint arXiv:{paper.links.arxiv}",
            eprint=paper.links.arxiv,
            archivePrefix="arXiv",
            primaryClass=paper.links.arxiv_class or "cs.CV",
        )
    number_key = "part" if venue.kind == VenueKind.conference else "number"
    optional = {
        "volume": paper.volume,
        number_key: paper.number,
        "pages": paper.pages,
        "doi": paper.links.doi,
    }
    want.update({k: v for k, v in optional.items() if v})
    if not paper.authors:  # no name is invented: key (to sort by) and note instead
        del want["author"]
        want.update(key=paper.title, note="Authors unknown")
    return want


@pytest.mark.parametrize("ascii", [False, True], ids=["utf8", "ascii"])
def test_round_trip_every_field(catalogue, ascii):
    text = citations.bibtex(catalogue, ascii=ascii)
    entries = parse_back(text)
    assert list(entries) == [p.id for p in catalogue.papers]  # every record, sorted by key
    for paper in catalogue.papers:
        got = dict(entries[paper.id])
        want = expected(paper, catalogue.venues[paper.venue])
        if "author" in got:
            got["author"] = decode_authors(got["author"])
        for key in ("title", "booktitle", "journal", "key"):
            if key in got:
                got[key] = decode(got[key])
        assert got == want, paper.id


def test_fixture_covers_the_tricky_cases(tricky):
    kinds = {tricky.venues[p.venue].kind for p in tricky.papers}
    assert kinds == set(VenueKind)
    assert {len(p.authors) for p in tricky.papers} >= {1, 20}
    assert any("&" in tricky.venues[p.venue].name for p in tricky.papers)
    assert any("{" in p.title for p in tricky.papers)
    assert any(any(ord(c) > 127 for c in a) for p in tricky.papers for a in p.authors)


def test_entry_types_keys_and_layout(tricky):
    text = citations.bibtex(tricky)
    assert text.startswith("@inproceedings{aaron2022massive,\n  author        = {Aaron, Abel and")
    assert "@article{zhang2020feature," in text
    assert "@misc{lee2023tiny," in text
    assert "  archivePrefix = {arXiv},\n  primaryClass  = {cs.CV},\n" in text
    assert "  journal       = {Journal of Image Processing \\& Machine Recognition},\n" in text
    assert "  volume        = {35},\n  part          = {3},\n" in text  # AAAI volume + issue
    assert (
        "  volume        = {42},\n  number        = {11},\n  pages         = {2800--2812},\n"
        in text
    )
    assert text.endswith("}\n") and "\n\n\n" not in text


def test_utf8_keeps_names_and_ascii_escapes_them(tricky):
    utf8 = citations.bibtex(tricky, tricky.in_category("logit"))
    assert "Müller, Jürgen and Çelik, Ayşe and Dvořák, Łukasz" in utf8
    ascii = citations.bibtex(tricky, ascii=True)
    assert ascii.isascii()
    assert (
        r"M{\"u}ller, J{\"u}rgen and {\c{C}}elik, Ay{\c{s}}e and Dvo{\v{r}}{\'a}k, {\L}ukasz"
        in ascii
    )
    assert r"Siobh{\'a}n" in ascii
    # Symbols LaTeX cannot take from UTF-8 become macros in both modes.
    assert r"{\ensuremath{\alpha}}-Divergences" in utf8


def test_ascii_refuses_what_has_no_latex_spelling(tricky):
    paper = tricky.papers[0].model_copy(update={"authors": ["张, 伟"]})
    with pytest.raises(citations.CitationError, match="no LaTeX spelling"):
        citations.bibtex(tricky, [paper], ascii=True)
    assert "张, 伟" in citations.bibtex(tricky, [paper])


@pytest.mark.parametrize(
    ("title", "latex"),
    [
        ("Decoupled Knowledge Distillation", "Decoupled Knowledge Distillation"),
        ("FitNets: Hints for Thin Deep Nets", "{FitNets}: Hints for Thin Deep Nets"),
        ("Distilling Knowledge via Knowledge Review", "Distilling Knowledge via Knowledge Review"),
        ("ReviewKD for CNN and 3D KD", "{ReviewKD} for {CNN} and {3D} {KD}"),
        ("NTCE-KD: Non-Target-Class-Enhanced KD", "{NTCE}-{KD}: Non-Target-Class-Enhanced {KD}"),
        ("iPhone-scale ResNet50 Students", "{iPhone}-scale {ResNet50} Students"),
        ("Distilling {BERT} and {Small Models}", "Distilling {BERT} and {Small Models}"),
        ("{KD} Is {{Not}} Dead", "{KD} Is {{Not}} Dead"),
        (
            "A & B: 100% of #1 in a_b, $5 ~ x^2 \\ y",
            r"A \& B: 100\% of \#1 in a\_b, \$5 "
            r"\textasciitilde{} x\textasciicircum{}2 \textbackslash{} y",
        ),
        ("Unbalanced } and { braces", r"Unbalanced \textbraceright{} and \textbraceleft{} braces"),
        (
            "Weak-to-Strong 3D Detection with X-Ray Distillation",
            "Weak-to-Strong {3D} Detection with {X-Ray} Distillation",
        ),
        ("U-Net, k-Means, X-ray and T-{Rex}", "{U-Net}, k-Means, {X-ray} and T-{Rex}"),
    ],
)
def test_title_protection_and_escaping(title, latex):
    assert citations.latex_title(title) == latex
    assert "{{" not in citations.latex_title(title).replace("{{Not}}", "")


def test_names():
    assert citations.latex_name("van der Maaten, Laurens") == "van der Maaten, Laurens"
    assert citations.latex_name("Sand, And Rew") == "Sand, {And} Rew"  # "and" would split the list
    assert citations.latex_name("O'Neil & Co, A_b") == r"O'Neil \& Co, A\_b"
    assert citations.latex_name("Kölsch, Jörg", ascii=True) == r"K{\"o}lsch, J{\"o}rg"


def test_deterministic_and_sorted_whatever_the_order(real):
    papers = list(reversed(real.papers))
    assert citations.bibtex(real, papers) == citations.bibtex(real) == citations.bibtex(real)
    keys = re.findall(r"^@\w+\{([^,]+),", citations.bibtex(real), re.M)
    assert keys == sorted(keys) == [p.id for p in real.papers]


def test_select(real):
    assert citations.select(real) == real.papers
    logit = citations.select(real, category="logit", year_from=2023)
    assert logit and all(p.category.value == "logit" and p.year >= 2023 for p in logit)
    assert [
        p.id for p in citations.select(real, ids=["zhao2022decoupled", "hinton2015distilling"])
    ] == ["hinton2015distilling", "zhao2022decoupled"]
    with pytest.raises(KeyError, match="nope2020x"):
        citations.select(real, ids=["nope2020x"])


# -- the command line ---------------------------------------------------------------------------


def test_cli_bibtex_stdout_and_file(tmp_path, capsys):
    args = ["export", "bibtex", "--papers", str(FIXTURES), "--ids", "pratt2019distilling"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("@inproceedings{pratt2019distilling,") and out.count("@") == 1
    target = tmp_path / "out" / "refs.bib"
    assert main(["export", "bibtex", "--papers", str(FIXTURES), "--ascii", "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    tricky = load(FIXTURES, check_losses=False)
    assert target.read_text(encoding="utf-8") == citations.bibtex(tricky, ascii=True)
    assert [p.name for p in target.parent.iterdir()] == ["refs.bib"]  # no temporary left


def test_cli_selection_errors(capsys):
    assert main(["export", "csv", "--papers", str(FIXTURES), "--ids", "nope2020x"]) == 2
    assert "nope2020x" in capsys.readouterr().err
    assert main(["export", "json", "--papers", str(FIXTURES), "--year-from", "2029"]) == 2
    assert "no record matches" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["bibtex", "csl-json", "json", "csv"])
def test_cli_every_format_filters(fmt, capsys):
    assert (
        main(
            ["export", fmt, "--papers", str(PAPERS), "--category", "feature", "--year-from", "2022"]
        )
        == 0
    )
    out = capsys.readouterr().out
    real = load(PAPERS, check_losses=False)
    ids = [p.id for p in real.papers if p.category.value == "feature" and p.year >= 2022]
    assert ids and all(i in out for i in ids)
    others = [p.id for p in real.papers if p.id not in ids]
    assert not [i for i in others if re.search(rf"\b{i}\b", out)]


# -- CSL-JSON, JSON, CSV ------------------------------------------------------------------------


def test_csl_json(catalogue):
    items = json.loads(citations.csl_json(catalogue))
    assert [i["id"] for i in items] == [p.id for p in catalogue.papers]
    for item, paper in zip(items, catalogue.papers):
        venue = catalogue.venues[paper.venue]
        assert (
            item["type"]
            == {
                "conference": "paper-conference",
                "journal": "article-journal",
                "preprint": "article",
            }[venue.kind.value]
        )
        assert item["title"] == paper.title
        assert [f"{a['family']}, {a['given']}" for a in item["author"]] == paper.authors
        assert item["issued"] == {"date-parts": [[paper.year]]}
        assert item["URL"] == str(paper.links.paper)
        assert item.get("DOI") == paper.links.doi
        assert item.get("volume") == paper.volume and item.get("issue") == paper.number
        assert item.get("page") == (paper.pages.replace("--", "-") if paper.pages else None)
        if venue.kind == VenueKind.preprint:
            assert item["number"] == f"arXiv:{paper.links.arxiv}" and item["publisher"] == "arXiv"
        else:
            assert item["container-title"] == venue.name


def test_json_is_the_records(catalogue):
    text = citations.as_json(catalogue)
    assert text == citations.as_json(catalogue, reversed(catalogue.papers))
    items = json.loads(text)
    for item, paper in zip(items, catalogue.papers, strict=True):
        venue = item.pop("venue")
        assert venue == {
            "key": paper.venue,
            **catalogue.venues[paper.venue].model_dump(mode="json"),
        }
        assert item == {k: v for k, v in paper.model_dump(mode="json").items() if k != "venue"}


def test_csv(catalogue):
    text = citations.as_csv(catalogue)
    assert "\r" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == citations.CSV_COLUMNS
    assert [r["id"] for r in rows] == [p.id for p in catalogue.papers]
    for row, paper in zip(rows, catalogue.papers):
        assert [a for a in row["authors"].split("; ") if a] == paper.authors
        assert row["title"] == paper.title and row["summary"] == paper.summary
        assert row["year"] == str(paper.year) and row["venue"] == paper.venue
        assert row["loss"].split("; ") == paper.loss
        assert row["doi"] == (paper.links.doi or "")


# -- LaTeX: the files compile without a warning about any entry ---------------------------------

have_tex = all(shutil.which(tool) for tool in TEX_TOOLS)
if not have_tex and os.environ.get("CI"):
    raise RuntimeError("TeX is required under CI: .ci/run installs it")
needs_tex = pytest.mark.skipif(
    not have_tex,
    reason="TeX is not installed (needs pdflatex, bibtex, biber: apt-get install "
    "texlive-latex-base texlive-latex-recommended texlive-bibtex-extra biber)",
)

BIBTEX_DOC = r"""\documentclass{article}
\usepackage[utf8]{inputenc}
\usepackage{url}
\usepackage[numbers]{natbib}
\begin{document}
Cited: \cite{%s}.
\bibliographystyle{plainnat}
\bibliography{refs}
\end{document}
"""
BIBER_DOC = r"""\documentclass{article}
\usepackage[utf8]{inputenc}
\usepackage[backend=biber,style=numeric]{biblatex}
\addbibresource{refs.bib}
\begin{document}
Cited: \cite{%s}.
\printbibliography
\end{document}
"""


def _run(args, cwd):
    env = {**os.environ, "max_print_line": "100000"}  # no wrapped log lines hiding a key
    result = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}"
    return result


def compile_bibliography(folder: Path, bib: str, keys: list[str], tool: str) -> str:
    """pdflatex -> bibtex|biber -> pdflatex x2; returns every warning line about an entry."""
    folder.mkdir()
    (folder / "refs.bib").write_text(bib, encoding="utf-8")
    doc = BIBTEX_DOC if tool == "bibtex" else BIBER_DOC
    (folder / "main.tex").write_text(doc % ",".join(keys), encoding="utf-8")
    latex = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main"]
    _run(latex, folder)
    # biber checks every entry against biblatex's data model too (mandatory and unknown fields).
    _run(
        ["bibtex", "main"] if tool == "bibtex" else ["biber", "--validate-datamodel", "main"],
        folder,
    )
    _run(latex, folder)
    _run(latex, folder)
    blg = (folder / "main.blg").read_text(encoding="utf-8", errors="replace")
    log = (folder / "main.log").read_text(encoding="utf-8", errors="replace")
    bbl = (folder / "main.bbl").read_text(encoding="utf-8", errors="replace")
    problems = [
        line
        for line in blg.splitlines()
        if re.search(r"Warning--|\bWARN\b|\bERROR\b|error message", line)
    ]
    problems += [
        line
        for line in log.splitlines()
        if "Warning" in line
        and (
            any(k in line for k in keys)
            or "undefined" in line
            or "Rerun" in line
            or "rerun" in line
        )
    ]
    problems += [f"{key}: missing from main.bbl" for key in keys if key not in bbl]
    return "\n".join(problems)


@pytest.fixture(scope="module")
def both(real, tricky):
    keys = [p.id for p in real.papers] + [p.id for p in tricky.papers]
    assert len(set(keys)) == len(keys)
    return keys


@pytest.mark.tex
@needs_tex
@pytest.mark.parametrize(
    ("tool", "ascii"),
    [("bibtex", True), ("biber", False), ("biber", True)],
    ids=["pdflatex+bibtex+ascii", "biber+utf8", "biber+ascii"],
)
def test_latex_compiles_without_warnings(tmp_path, real, tricky, both, tool, ascii):
    # records with no known author have their own test: LaTeX rightly warns about them
    named = [[p for p in c.papers if p.authors] for c in (real, tricky)]
    bib = (
        citations.bibtex(real, named[0], ascii=ascii)
        + "\n"
        + citations.bibtex(tricky, named[1], ascii=ascii)
    )
    keys = [p.id for p in named[0] + named[1]]
    problems = compile_bibliography(tmp_path / "doc", bib, keys, tool)
    assert not problems, problems


CLASSIC_DOC = r"""\documentclass{article}
\usepackage[utf8]{inputenc}
\usepackage{url}
\begin{document}
Cited: \cite{%s}.
\bibliographystyle{%s}
\bibliography{refs}
\end{document}
"""


def rendered_bbl(folder: Path, bib: str, keys: list[str], style: str) -> str:
    """The .bbl that ``style`` (a classic .bst, or ``biblatex``) makes of ``keys``."""
    folder.mkdir()
    (folder / "refs.bib").write_text(bib, encoding="utf-8")
    biblatex = style == "biblatex"
    doc = BIBER_DOC % ",".join(keys) if biblatex else CLASSIC_DOC % (",".join(keys), style)
    (folder / "main.tex").write_text(doc, encoding="utf-8")
    _run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main"], folder)
    _run(["biber", "main"] if biblatex else ["bibtex", "main"], folder)
    return (folder / "main.bbl").read_text(encoding="utf-8", errors="replace")


#: The one warning LaTeX gives for an entry with no known author (the export says so on stderr).
MISSING_AUTHOR = re.compile(
    r"empty author in (\w+)|Entry '(\w+)'.*Missing mandatory field 'author'"
)


@pytest.mark.tex
@needs_tex
@pytest.mark.parametrize("style", ["plain", "IEEEtran", "biblatex"])
def test_rendered_bibliography_keeps_arxiv_ids_and_capitals(tmp_path, real, style):
    """What a reader sees: an arXiv-only paper shows its arXiv id in classic styles too (they
    ignore ``eprint``), and "X-Ray" stays capitalised where a style lowercases titles."""
    if style != "biblatex" and not _kpsewhich(f"{style}.bst"):
        if os.environ.get("CI"):
            raise RuntimeError(f"{style}.bst is required under CI: .ci/run installs it")
        pytest.skip(f"{style}.bst is not installed (apt-get install texlive-publishers)")
    preprints = [p for p in real.papers if real.venues[p.venue].kind == VenueKind.preprint]
    preprint = next(p for p in preprints if p.links.arxiv)
    xray = next(p for p in real.papers if "X-Ray" in p.title)
    keys = [preprint.id, xray.id]
    bib = citations.bibtex(real, [preprint, xray], ascii=True)
    bbl = " ".join(rendered_bbl(tmp_path / style, bib, keys, style).split())
    if style == "biblatex":
        assert f"\\verb {preprint.links.arxiv}" in bbl or f"{{{preprint.links.arxiv}}}" in bbl
    else:
        assert f"arXiv:{preprint.links.arxiv}" in bbl
    assert "X-Ray" in bbl
    assert "x-ray" not in bbl  # what plain's sentence case makes of an unprotected "X-Ray"


def _kpsewhich(name: str) -> str:
    if not shutil.which("kpsewhich"):
        return ""
    found = subprocess.run(["kpsewhich", name], capture_output=True, text=True)
    return found.stdout.strip()


@pytest.mark.tex
@needs_tex
@pytest.mark.parametrize(
    ("tool", "ascii"),
    [("bibtex", True), ("biber", False)],
    ids=["pdflatex+bibtex+ascii", "biber+utf8"],
)
def test_latex_compiles_records_without_authors(tmp_path, real, tricky, tool, ascii):
    papers = [p for c in (real, tricky) for p in c.papers if not p.authors]
    assert {p.id for p in papers} >= {
        "unknown2023local",
        "unknown2024knowledge",
        "unknown2021anonymous",
    }
    # one named record whose family name sorts among the titles: Kim < Knowledge < Local
    named = [p for p in real.papers if p.id == "kim2018paraphrasing"]
    bib = "\n".join(
        citations.bibtex(c, [p for p in c.papers if not p.authors or p in named], ascii=ascii)
        for c in (real, tricky)
    )
    keys = [p.id for p in papers + named]
    folder = tmp_path / "doc"
    # cited against the sort order: the bibliography's order comes from sorting alone
    problems = compile_bibliography(folder, bib, sorted(keys, reverse=True), tool).splitlines()
    # every entry is typeset; the only warning is the missing author, at most once per entry
    other = [line for line in problems if not MISSING_AUTHOR.search(line)]
    assert not other, other
    flagged = [m.group(1) or m.group(2) for line in problems if (m := MISSING_AUTHOR.search(line))]
    assert set(flagged) <= {p.id for p in papers}  # plainnat checks no author in @misc
    assert len(flagged) == len(set(flagged)), flagged
    # the entry sorts by its key (the title), among the authors' names: bibtex's plainnat sorts
    # by author, else key, then year (without key: by year, local before knowledge); biblatex's
    # nty falls back to the title, which the key repeats
    bbl = (folder / "main.bbl").read_text(encoding="utf-8", errors="replace")
    entry = r"\\bibitem(?:\[.*?\])?\{(\w+)\}" if tool == "bibtex" else r"\\entry\{(\w+)\}"
    order = [key for key in re.findall(entry, bbl, re.S) if key in keys]
    want = [
        "unknown2021anonymous",
        "kim2018paraphrasing",
        "unknown2024knowledge",
        "unknown2023local",
    ]
    assert [key for key in order if key in want] == want, order
    by_key = sorted(papers, key=lambda p: p.title.lower())
    assert [key for key in order if key != "kim2018paraphrasing"] == [p.id for p in by_key]
