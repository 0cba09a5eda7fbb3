"""``kdsurvey check metadata``: every offline rule on crafted records, the real catalogue, and
``--online`` against fake arXiv and Crossref APIs on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import date

import pytest
from conftest import PAPERS, git
from httpfake import FakeServer, Reply, arxiv_api, crossref_api

from kdsurvey.checks.metadata import check
from kdsurvey.checks.online import check_online
from kdsurvey.cli import main
from kdsurvey.importers.arxiv import ArxivClient
from kdsurvey.importers.crossref import CrossrefClient
from kdsurvey.importers.httpclient import Http, RetryPolicy
from kdsurvey.problems import ERROR, WARNING, Problem
from kdsurvey.records.catalogue import CatalogueError, load
from kdsurvey.records.model import citation_key
from kdsurvey.records.textrules import arxiv_date, edit_distance, title_case

TODAY = date(2026, 11, 26)


def record(
    title="Distilling the Knowledge in a Neural Network",
    authors=("Hinton, Geoffrey", "Vinyals, Oriol", "Dean, Jeff"),
    year=2015,
    venue="arxiv",
    arxiv="1503.02531",
    paper=None,
    doi=None,
    code=None,
    suffix="",
) -> tuple[str, str]:
    """``(id, YAML)`` of a valid record; ``arxiv`` is written on line 14 when given."""
    key = citation_key(authors[0], year, title) + suffix
    lines = [
        "# yaml-language-server: $schema=schema.json",
        f"id: {key}",
        f"title: {json.dumps(title)}",
        "authors:",
        *[f"  - {json.dumps(a, ensure_ascii=False)}" for a in authors],
        f"year: {year}",
        f"venue: {venue}",
        "category: logit",
        "tasks: [classification]",
        "links:",
        f"  paper: {paper or 'https://example.org/' + key}",
    ]
    if arxiv:
        lines.append(f'  arxiv: "{arxiv}"')
    if doi:
        lines.append(f"  doi: {doi}")
    if code:
        lines.append(f"  code: {code}")
    lines += ["loss: kd", "summary: The student matches the teacher's softened probabilities."]
    return key, "\n".join(lines) + "\n"


@pytest.fixture
def papers(catalogue_dir):
    (catalogue_dir / "hinton2015distilling.yaml").unlink()
    return catalogue_dir


def write(folder, *records):
    for key, text in records:
        (folder / f"{key}.yaml").write_text(text, encoding="utf-8")


def findings(folder, **kwargs) -> list[Problem]:
    return check(load(folder), today=TODAY, **kwargs)


def only(found, field, severity=None):
    chosen = [f for f in found if f.field == field and (severity is None or f.severity == severity)]
    assert len(chosen) == 1, found
    return chosen[0]


def test_real_catalogue_has_no_metadata_errors():
    found = check(load(PAPERS))
    assert [str(f) for f in found if f.severity == ERROR] == []


def test_clean_record_has_no_findings(papers):
    write(papers, record())
    assert findings(papers) == []


@pytest.mark.parametrize(
    ("year", "arxiv", "venue", "message"),
    [
        (2021, "2305.12345", "cvpr", "is from May 2023: it cannot belong to a 2021 paper"),
        (2014, "1503.02531", "arxiv", "cannot belong to a 2014 paper"),
        (2015, "1513.02531", "arxiv", "has no month 13"),
        (2026, "2712.00001", "arxiv", "in the future"),
    ],
)
def test_arxiv_id_against_year_is_an_error(papers, year, arxiv, venue, message):
    write(papers, record(year=year, arxiv=arxiv, venue=venue))
    finding = only(findings(papers), "links.arxiv")
    assert finding.severity == ERROR and message in finding.message
    assert finding.line == 14 and finding.path.endswith(".yaml")
    assert str(finding).endswith(f":14: links.arxiv: {finding.message}")


def test_arxiv_posted_the_year_after_publication_is_fine(papers):
    # ICCV 2021 papers are often posted on arXiv in early 2022
    write(papers, record(year=2021, arxiv="2202.03680", venue="iccv"))
    assert findings(papers) == []


def test_arxiv_only_record_cited_by_a_later_year_is_a_warning(papers):
    write(papers, record(year=2016, arxiv="1503.02531"))
    assert only(findings(papers), "year").severity == WARNING


@pytest.mark.parametrize(
    ("venue", "year", "message"),
    [
        ("iccv", 2020, "no ICCV 2020"),
        ("eccv", 2021, "no ECCV 2021"),
        ("iclr", 2012, "ICLR was first held in 2013"),
    ],
)
def test_venue_not_held_that_year_is_an_error(papers, venue, year, message):
    write(papers, record(venue=venue, year=year, arxiv=None))
    finding = only(findings(papers), "venue")
    assert finding.severity == ERROR and message in finding.message and finding.line == 9


@pytest.mark.parametrize(
    ("venue", "year"),
    [("iccv", 2019), ("eccv", 2022), ("cvpr", 2020), ("tpami", 2020), ("arxiv", 2020)],
)
def test_venue_held_that_year(papers, venue, year):
    write(papers, record(venue=venue, year=year, arxiv=None))
    assert [f for f in findings(papers) if f.field == "venue"] == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("https://github.com/hinton/kd.git", "write the code link as https://github.com/hinton/kd"),
        ("https://www.github.com/hinton/kd", "write the code link as https://github.com/hinton/kd"),
        ("https://gitlab.com/hinton/kd/", "without a trailing /"),
    ],
)
def test_code_url_must_be_normalised(papers, code, message):
    write(papers, record(code=code))
    finding = only(findings(papers), "links.code")
    assert finding.severity == ERROR and message in finding.message


def test_paper_link_contradicting_links_arxiv_is_an_error(papers):
    write(papers, record(paper="https://arxiv.org/abs/1503.02532"))
    found = [f for f in findings(papers) if f.field == "links.paper"]
    assert [f.severity for f in found] == [ERROR]
    assert "links to arXiv 1503.02532 but links.arxiv is 1503.02531" in found[0].message


def test_arxiv_pdf_link_is_a_warning(papers):
    write(papers, record(paper="https://arxiv.org/pdf/1503.02531v2"))
    finding = only(findings(papers), "links.paper")
    assert finding.severity == WARNING and "https://arxiv.org/abs/1503.02531" in finding.message


def test_near_duplicate_titles(papers):
    write(
        papers,
        record(),
        record(title="Distilling the Knowledge in a Neural Networks", arxiv=None, suffix="b"),
    )
    finding = only(findings(papers), "title")
    assert finding.severity == ERROR
    assert (
        "within 1 edit(s) of" in finding.message and "hinton2015distilling.yaml" in finding.message
    )


def test_near_duplicate_titles_of_different_arxiv_papers_are_a_warning(papers):
    write(
        papers,
        record(),
        record(
            title="Distilling the Knowledge in a Neural Networks", arxiv="1503.02532", suffix="b"
        ),
    )
    assert only(findings(papers), "title").severity == WARNING


def test_different_titles_are_not_near_duplicates(papers):
    write(papers, record(), record(title="Distilling Knowledge via Knowledge Review", arxiv=None))
    assert findings(papers) == []


def test_author_formats(papers):
    write(
        papers,
        record(
            authors=(
                "HINTON, Geoffrey",
                "Vinyals, O.",
                "Dean, Jeff E",
                "van Gool, Luc",
                "Vinyals, O.",
            )
        ),
    )
    found = findings(papers)
    assert only(found, "authors[0]").severity == WARNING  # capitals
    assert "only initials" in [f for f in found if f.field == "authors[1]"][0].message
    assert "without a period" in only(found, "authors[2]").message
    assert [f for f in found if f.field == "authors[3]"] == []  # particles are fine
    assert any(
        f.field == "authors[4]" and f.severity == ERROR and "listed twice" in f.message
        for f in found
    )


def test_one_person_two_spellings_across_records(papers):
    write(
        papers,
        record(),
        record(title="Another Paper", authors=("Hinton, Geoffrey", "Viñyals, Oriol"), arxiv=None),
    )
    finding = only(findings(papers), "authors[1]")
    assert finding.severity == WARNING and "'Vinyals, Oriol'" in finding.message


def test_initials_matching_one_full_name_elsewhere(papers):
    write(papers, record(), record(title="Another Paper", authors=("Hinton, G.",), arxiv=None))
    messages = [f.message for f in findings(papers) if f.field == "authors[0]"]
    assert any("written 'Hinton, Geoffrey' in other records" in m for m in messages)


def test_title_casing_is_a_warning(papers):
    write(papers, record(title="Distilling the knowledge in a Neural Network"))
    finding = only(findings(papers), "title")
    assert finding.severity == WARNING
    assert "'Distilling the Knowledge in a Neural Network'" in finding.message
    assert str(finding).split(": ", 2)[2].startswith("warning: ")


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "Knowledge Distillation from A Stronger Teacher",
            "Knowledge Distillation from a Stronger Teacher",
        ),
        (
            "Improving Fast Segmentation With Teacher-student Learning",
            "Improving Fast Segmentation with Teacher-Student Learning",
        ),
        ("NormKD: normalized Logits for KD", "NormKD: Normalized Logits for KD"),
        (
            "Weak-to-Strong 3D Object Detection with X-Ray Distillation",
            "Weak-to-Strong 3D Object Detection with X-Ray Distillation",
        ),
        (
            "A Gift From Knowledge Distillation: Fast Optimization",
            "A Gift from Knowledge Distillation: Fast Optimization",
        ),
        (
            "Revisit Distillation: from Small Scale to Large",
            "Revisit Distillation: From Small Scale to Large",
        ),
        ("What to Distil Into", "What to Distil Into"),
        (
            '"Like What You Like": Knowledge Distill via Neuron Selectivity Transfer',
            '"Like What You Like": Knowledge Distill via Neuron Selectivity Transfer',
        ),
    ],
)
def test_title_case(title, expected):
    assert title_case(title) == expected


def test_helpers():
    assert arxiv_date("2305.12345") == (2023, 5)
    assert arxiv_date("cs/9912017") == (1999, 12)
    assert arxiv_date("math.GT/0309136") == (2003, 9)
    assert edit_distance("distillation", "disitllation", 3) == 2
    assert edit_distance("abc", "abcdefgh", 2) == 3


def test_only_the_chosen_records_are_reported(papers):
    write(papers, record(), record(title="Another paper", venue="iccv", year=2020, arxiv=None))
    catalogue = load(papers)
    first = [p for p in catalogue.papers if p.id.startswith("hinton2015distilling")]
    assert check(catalogue, first, today=TODAY) == []


# -- the command -----------------------------------------------------------------------------------


def test_command_exit_codes_and_output(papers, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    write(papers, record(title="Distilling the knowledge in a Neural Network"))
    assert main(["check", "metadata", "--papers", str(papers)]) == 0
    out = capsys.readouterr().out
    assert ":3: title: warning: title casing" in out
    assert out.strip().endswith("1 records: 0 error(s), 1 warning(s), 0 unconfirmed field(s)")
    assert main(["check", "metadata", "--papers", str(papers), "--strict"]) == 1

    (papers / "hinton2015distilling.yaml").unlink()
    write(papers, record(year=2021, arxiv="2305.12345", venue="cvpr"))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["check", "metadata", "--papers", str(papers)]) == 1
    captured = capsys.readouterr()
    assert "::error file=" in captured.out and ",line=14::links.arxiv:" in captured.out
    assert "1 metadata error(s)" in captured.err


def test_command_json(papers, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    write(papers, record(venue="iccv", year=2020, arxiv=None))
    assert main(["check", "metadata", "--papers", str(papers), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["records"] == 1 and data["warnings"] == []
    [error] = data["errors"]
    assert (error["field"], error["line"], error["severity"]) == ("venue", 9, "error")


# -- online ----------------------------------------------------------------------------------------

ARXIV = {
    "1503.02531": {
        "title": "Distilling the Knowledge in a Neural Network",
        "authors": ["Geoffrey Hinton", "Oriol Vinyals", "Jeff Dean"],
        "published": "2015-03-09T15:44:49Z",
    }
}


def online(papers, server, **kwargs):
    http = Http(RetryPolicy(timeout=2, retries=1, backoff=0))
    arxiv = ArxivClient(http, server.url("/api/query"), interval=0)
    crossref = CrossrefClient(http, server.url("/crossref"))
    catalogue = load(papers)
    try:
        return check_online(catalogue, catalogue.papers, arxiv, crossref, **kwargs)
    finally:
        http.close()


def test_online_agreement_gives_no_findings(papers):
    write(papers, record(doi="10.1000/kd.1", venue="neurips", year=2015))
    with FakeServer() as server:
        arxiv_api(server, ARXIV)
        crossref_api(
            server,
            {
                "10.1000/kd.1": {
                    "title": ["Distilling the knowledge in a neural network"],
                    "author": [
                        {"family": "Hinton", "given": "Geoffrey"},
                        {"family": "Vinyals", "given": "Oriol"},
                        {"family": "Dean", "given": "J."},
                    ],
                    "issued": {"date-parts": [[2015, 12]]},
                }
            },
        )
        found = online(papers, server)
    assert found == []


def test_online_disagreements(papers):
    write(
        papers,
        record(doi="10.1000/other", authors=("Hinton, Geoffrey", "Vinyals, Oriol")),
        record(
            title="A Missing Paper",
            authors=("Doe, Jane",),
            year=2020,
            arxiv="2001.00001",
            doi="10.1000/unknown",
        ),
    )
    with FakeServer() as server:
        arxiv_api(server, ARXIV)
        crossref_api(
            server,
            {
                "10.1000/other": {
                    "title": ["Something Else Entirely About Bees"],
                    "issued": {"date-parts": [[2019]]},
                }
            },
        )
        found = online(papers, server)
    by = {(f.path.rsplit("/", 1)[-1], f.field): f for f in found}
    authors = by[("hinton2015distilling.yaml", "authors")]
    assert (
        authors.severity == WARNING and "arXiv lists 3 author(s), the record 2" in authors.message
    )
    wrong = by[("hinton2015distilling.yaml", "links.doi")]
    assert wrong.severity == ERROR and "another paper?" in wrong.message
    missing = by[("doe2020missing.yaml", "links.arxiv")]
    assert missing.severity == ERROR and "arXiv has no paper 2001.00001" in missing.message
    assert by[("doe2020missing.yaml", "links.doi")].severity == WARNING


def test_online_year_from_crossref(papers):
    write(papers, record(doi="10.1000/kd.1", arxiv=None, venue="tnnls", year=2021))
    with FakeServer() as server:
        crossref_api(
            server,
            {
                "10.1000/kd.1": {
                    "title": ["Distilling the Knowledge in a Neural Network"],
                    "issued": {"date-parts": [[2020, 2]]},
                    "published-print": {"date-parts": [[2022]]},
                }
            },
        )
        found = online(papers, server)
    assert [(f.field, f.severity) for f in found] == [("year", WARNING)]
    assert "2020/2022" in found[0].message


def test_online_services_down_are_warnings_not_errors(papers):
    write(papers, record(doi="10.1000/kd.1"))
    with FakeServer() as server:
        server.route("/api/query", Reply(503))
        server.prefix("/crossref/", lambda r: Reply(500))
        found = online(papers, server)
    assert {f.severity for f in found} == {WARNING}
    assert {f.field for f in found} == {"links.arxiv", "links.doi"}
    assert all("not compared" in f.message for f in found)


def test_online_command(papers, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    write(papers, record())
    with FakeServer() as server:
        arxiv_api(server, ARXIV)
        code = main(
            [
                "check",
                "metadata",
                "--papers",
                str(papers),
                "--online",
                "--arxiv-api",
                server.url("/api/query"),
                "--crossref-api",
                server.url("/crossref"),
                "--arxiv-interval",
                "0",
            ]
        )
    assert code == 0
    assert len(server.arxiv_batches) == 1
    assert "1 records: 0 error(s), 0 warning(s), 0 unconfirmed field(s)" in capsys.readouterr().out


def test_online_arxiv_primary_category_of_a_preprint(papers):
    write(papers, record())
    with FakeServer() as server:
        arxiv_api(server, {"1503.02531": {**ARXIV["1503.02531"], "category": "stat.ML"}})
        found = online(papers, server)
    [finding] = found
    assert (finding.field, finding.severity) == ("links", WARNING)
    assert "primary category is stat.ML: set links.arxiv_class" in finding.message


@pytest.mark.parametrize("venue", ["iclr", "eccv"])
def test_online_primary_category_of_a_published_paper(papers, venue):
    """CRD (ICLR) and KDSVD (ECCV) are cs.LG on arXiv: a published record is compared too, and
    one that says so draws no warning."""
    write(papers, record(venue=venue, year=2018))
    with FakeServer() as server:
        arxiv_api(server, {"1503.02531": {**ARXIV["1503.02531"], "category": "cs.LG"}})
        [finding] = [f for f in online(papers, server) if f.field == "links"]
        assert finding.severity == WARNING
        assert "primary category is cs.LG: set links.arxiv_class" in finding.message
        assert "gives none, so the exports say cs.CV" in finding.message
        path = next(p for p in papers.glob("hinton*.yaml"))
        path.write_text(
            path.read_text().replace(
                '  arxiv: "1503.02531"\n', '  arxiv: "1503.02531"\n  arxiv_class: cs.LG\n'
            )
        )
        assert [f for f in online(papers, server) if f.field == "links"] == []


def test_changed_since_checks_only_changed_records(papers, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    write(papers, record(title="Distilling the knowledge in a Neural Network"))
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "base"]):
        git(papers.parent, *args)
    write(papers, record(title="Another Paper", venue="iccv", year=2020, arxiv=None))
    assert main(["check", "metadata", "--papers", str(papers), "--changed-since", "HEAD"]) == 1
    out = capsys.readouterr().out
    assert "hinton2020another.yaml:9: venue:" in out and "title casing" not in out
    assert out.strip().endswith("1 records: 1 error(s), 0 warning(s), 0 unconfirmed field(s)")


@pytest.mark.parametrize("command", [["check"], ["check", "links"], ["check", "metadata"], ["new"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: kdsurvey")


def test_a_publisher_doi_prefix_is_one_line_of_data(papers):
    write(papers, record(venue="tip", year=2020, arxiv=None, doi="10.9999/tip.1"))
    (papers / "doi_prefixes.yaml").unlink(missing_ok=True)
    assert [f for f in findings(papers) if f.field == "links.doi"] == []
    (papers / "doi_prefixes.yaml").write_text('# publishers\nIEEE: "10.1109"\n')
    [finding] = [f for f in findings(papers) if f.field == "links.doi"]
    assert finding.severity == WARNING and "whose DOIs start 10.1109/" in finding.message
    (papers / "doi_prefixes.yaml").write_text('IEEE: "10.1109"\nACM: 10.1145\n')
    with pytest.raises(CatalogueError) as failed:
        load(papers)
    [problem] = failed.value.problems
    assert (problem.path.endswith("doi_prefixes.yaml"), problem.line, problem.field) == (
        True,
        2,
        "ACM",
    )
