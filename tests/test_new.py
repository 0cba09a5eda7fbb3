"""Adding a paper: ``kdsurvey new`` against a fake arXiv API / Crossref on 127.0.0.1, and the
committed JSON Schema that editors use while a record is typed."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import PAPERS, ROOT
from httpfake import FakeServer, arxiv_api, crossref_api

from kdsurvey.cli import main
from kdsurvey.importers.newpaper import NewPaperError, clean_arxiv_id, family_given
from kdsurvey.records.catalogue import load, record_paths
from kdsurvey.records.writer import HEADER

DKD = {
    "2203.08679": {
        "title": "Decoupled Knowledge Distillation",
        "version": 2,
        "authors": ["Borui Zhao", "Quan Cui", "Renjie Song", "Yiyu Qiu", "Jiajun Liang"],
        "published": "2022-03-16T17:59:59Z",
        "journal_ref": "CVPR 2022",
    },
    "2301.00002": {
        "title": "A Preprint about Logits",
        "authors": ["Jane van der Berg"],
        "published": "2023-01-02T00:00:00Z",
        "category": "stat.ML",
    },
}
FLAGS = [
    "--category",
    "logit",
    "--task",
    "classification",
    "--loss",
    "dkd",
    "--summary",
    "The student matches target and non-target class probabilities apart.",
]


# -- the committed schema --------------------------------------------------------------------------


def test_committed_schema_is_what_kdsurvey_schema_prints(capsys):
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    committed = (PAPERS / "schema.json").read_text(encoding="utf-8")
    assert committed == printed, (
        "papers/schema.json is stale: run kdsurvey schema -o papers/schema.json"
    )


def test_every_record_references_the_schema_on_its_first_line():
    for path in record_paths(PAPERS):
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        assert first == HEADER == "# yaml-language-server: $schema=schema.json", path.name


def test_every_record_validates_against_the_committed_schema():
    import jsonschema

    schema = json.loads((PAPERS / "schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    bad = {}
    for path in record_paths(PAPERS):
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))))
        if errors:
            bad[path.name] = errors[0].message
    assert bad == {}


# -- helpers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Geoffrey Hinton", "Hinton, Geoffrey"),
        ("Jian-Ping Mei", "Mei, Jian-Ping"),
        ("Luc van Gool", "van Gool, Luc"),
        ("Jane van der Berg", "van der Berg, Jane"),
        ("Martin Luther King Jr.", "King Jr., Martin Luther"),
        ("Hinton,  Geoffrey", "Hinton, Geoffrey"),
        ("Plato", "Plato"),
    ],
)
def test_family_given(name, expected):
    assert family_given(name) == expected


def test_clean_arxiv_id():
    for raw in (
        "2203.08679",
        "arXiv:2203.08679v2",
        "https://arxiv.org/abs/2203.08679v1",
        "https://arxiv.org/pdf/2203.08679.pdf",
    ):
        assert clean_arxiv_id(raw) == "2203.08679"
    assert clean_arxiv_id("cs/0112017v1") == "cs/0112017"
    with pytest.raises(NewPaperError):
        clean_arxiv_id("2203.0867")


# -- kdsurvey new ----------------------------------------------------------------------------------


@pytest.fixture
def api(monkeypatch):
    with FakeServer() as server:
        arxiv_api(server, DKD)
        crossref_api(
            server,
            {
                "10.1109/TIP.2023.1": {
                    "title": ["Channel Distillation for Segmentation"],
                    "author": [
                        {"family": "Wang", "given": "Li"},
                        {"family": "Müller", "given": "Anna"},
                    ],
                    "issued": {"date-parts": [[2023, 5]]},
                    "published-print": {"date-parts": [[2024]]},
                    "container-title": ["IEEE Transactions on Image Processing"],
                }
            },
        )
        monkeypatch.setenv("KDSURVEY_ARXIV_API", server.url("/api/query"))
        monkeypatch.setenv("KDSURVEY_CROSSREF_API", server.url("/crossref"))
        yield server


def new(papers, *args):
    return main(["new", "--papers", str(papers), *args])


def test_new_from_arxiv_writes_a_valid_record(api, catalogue_dir, capsys):
    assert (
        new(
            catalogue_dir,
            "--arxiv",
            "arXiv:2203.08679v2",
            *FLAGS,
            "--code",
            "https://github.com/megvii-research/mdistiller",
            "--official",
        )
        == 0
    )
    path = catalogue_dir / "zhao2022decoupled.yaml"
    assert "wrote" in capsys.readouterr().err and path.exists()
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER + "\nid: zhao2022decoupled\n")
    paper = next(p for p in load(catalogue_dir).papers if p.id == "zhao2022decoupled")
    assert paper.title == "Decoupled Knowledge Distillation"  # arXiv's line break folded away
    assert paper.authors[:2] == ["Zhao, Borui", "Cui, Quan"] and len(paper.authors) == 5
    assert (paper.year, paper.venue) == (2022, "cvpr")  # from the journal reference
    assert paper.links.arxiv == "2203.08679" and paper.links.code_official is True
    assert paper.links.arxiv_class is None  # cs.CV, the default, is not written
    assert str(paper.links.paper) == "https://arxiv.org/abs/2203.08679"
    assert api.arxiv_batches == [["2203.08679"]]


def test_new_without_the_curated_fields_writes_todos_and_says_so(api, catalogue_dir, capsys):
    # A draft with TODO fields is a success (exit 0, EXIT_CODES); stderr names the fields.
    assert new(catalogue_dir, "--arxiv", "2301.00002") == 0
    err = capsys.readouterr().err
    assert "still to fill in: category, tasks, loss, summary (the TODO lines)" in err
    assert main(["validate", "--papers", str(catalogue_dir)]) == 1  # until they are filled in
    path = catalogue_dir / "vanderberg2023preprint.yaml"
    text = path.read_text(encoding="utf-8")
    assert "# TODO" in text and "van der Berg, Jane" in text and "venue: arxiv" in text
    assert "  arxiv_class: stat.ML\n" in text  # arXiv's primary category, for BibTeX
    assert "arxiv_class" not in (catalogue_dir / "hinton2015distilling.yaml").read_text()
    for field in ("category", "tasks", "loss", "summary"):
        line = next(n for n, ln in enumerate(text.splitlines(), 1) if ln.startswith(field + ":"))
        assert f"vanderberg2023preprint.yaml:{line}: {field}:" in err
    assert "then run `kdsurvey validate`" in err


def test_new_dry_run_prints_and_writes_nothing(api, catalogue_dir, capsys):
    assert new(catalogue_dir, "--arxiv", "2203.08679", *FLAGS, "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.startswith(HEADER) and "title: Decoupled Knowledge Distillation" in out
    assert not (catalogue_dir / "zhao2022decoupled.yaml").exists()


def test_new_dry_run_with_todos_exits_0_names_the_fields_and_no_file(api, catalogue_dir, capsys):
    assert new(catalogue_dir, "--arxiv", "2301.00002", "--dry-run") == 0
    captured = capsys.readouterr()
    assert "category: null  # TODO" in captured.out
    assert "dry run, nothing written; still to fill in: category, tasks, loss, summary" in (
        captured.err
    )
    assert "vanderberg2023preprint.yaml" not in captured.err  # no file it did not write
    assert not (catalogue_dir / "vanderberg2023preprint.yaml").exists()


def test_new_dry_run_with_a_real_problem_exits_1(api, catalogue_dir, capsys):
    bad = ["--dry-run", "--arxiv", "2203.08679", *FLAGS, "--loss", "no-such-loss"]
    assert new(catalogue_dir, *bad) == 1
    err = capsys.readouterr().err
    assert "<stdout>:" in err and "loss" in err and "zhao2022decoupled.yaml" not in err


def test_new_json(api, catalogue_dir, capsys):
    assert new(catalogue_dir, "--arxiv", "2301.00002", "--format", "json", "--dry-run") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == "vanderberg2023preprint" and data["written"] is False
    assert data["path"] is None
    assert data["todo"] == ["category", "tasks", "loss", "summary"]
    assert {p["field"] for p in data["problems"]} >= {"category", "summary"}


def test_new_refuses_a_paper_already_catalogued(api, catalogue_dir, capsys):
    arxiv_api(
        api,
        {
            "1503.02531": {
                "title": "Distilling the Knowledge in a Neural Network",
                "authors": ["Geoffrey Hinton"],
                "published": "2015-03-09T00:00:00Z",
            }
        },
    )
    assert new(catalogue_dir, "--arxiv", "1503.02531", *FLAGS) == 1
    err = capsys.readouterr().err
    assert (
        "already in the catalogue as " in err and "hinton2015distilling.yaml (same arXiv id)" in err
    )
    assert sorted(p.name for p in record_paths(catalogue_dir)) == ["hinton2015distilling.yaml"]
    assert api.log == []  # refused before any request


def test_new_checks_the_catalogue_before_fetching(api, catalogue_dir, capsys):
    # The fake arXiv API does not know 1503.02531: a request would fail "has no paper".
    assert new(catalogue_dir, "--arxiv", "arXiv:1503.02531v1", *FLAGS) == 1
    err = capsys.readouterr().err
    assert "already in the catalogue as" in err and "has no paper" not in err
    assert api.log == []


def test_new_arxiv_with_the_fields_as_flags_fetches_nothing_and_keeps_the_id(
    api, catalogue_dir, capsys
):
    given = ["--title", "Offline Distillation", "--author", "Jane Doe", "--year", "2024"]
    assert new(catalogue_dir, "--arxiv", "2405.00001v3", *given, *FLAGS) == 0
    assert api.log == []  # the fake API does not know this id either
    paper = next(p for p in load(catalogue_dir).papers if p.id == "doe2024offline")
    assert paper.links.arxiv == "2405.00001" and paper.venue == "arxiv"
    assert str(paper.links.paper) == "https://arxiv.org/abs/2405.00001"
    assert "wrote " in capsys.readouterr().err


def test_new_offline(api, catalogue_dir, capsys):
    assert new(catalogue_dir, "--arxiv", "2203.08679", "--offline", *FLAGS) == 2
    assert "--offline asks no API: give --title, --author, --year too" in capsys.readouterr().err
    given = ["--title", "Decoupled KD", "--author", "Borui Zhao", "--year", "2022"]
    args = ["--arxiv", "2203.08679", "--offline", "--venue", "cvpr", *given, *FLAGS]
    assert new(catalogue_dir, *args) == 0
    assert api.log == []
    paper = next(p for p in load(catalogue_dir).papers if p.id == "zhao2022decoupled")
    assert (paper.venue, paper.links.arxiv) == ("cvpr", "2203.08679")


def test_new_unknown_venue_is_bad_usage(api, catalogue_dir, capsys):
    assert new(catalogue_dir, "--arxiv", "2203.08679", "--venue", "nope", *FLAGS) == 2
    assert "--venue nope: not a key of venues.yaml" in capsys.readouterr().err
    assert api.log == []


def test_new_adds_a_letter_when_the_key_is_taken(api, catalogue_dir):
    other = (
        (catalogue_dir / "hinton2015distilling.yaml")
        .read_text()
        .replace("hinton2015distilling", "zhao2022decoupled")
        .replace("Distilling the Knowledge in a Neural Network", "Decoupled Teachers")
        .replace("Hinton, Geoffrey", "Zhao, Borui")
        .replace("year: 2015", "year: 2022")
        .replace('  arxiv: "1503.02531"\n', "")
        .replace("arxiv.org/abs/1503.02531", "example.org/d")
    )
    (catalogue_dir / "zhao2022decoupled.yaml").write_text(other)
    assert new(catalogue_dir, "--arxiv", "2203.08679", *FLAGS) == 0
    assert (catalogue_dir / "zhao2022decoupledb.yaml").exists()
    load(catalogue_dir)  # both validate, the suffix is allowed by the key rule


def test_new_unknown_arxiv_id(api, catalogue_dir, capsys):
    assert new(catalogue_dir, "--arxiv", "2301.99999") == 1
    assert "the arXiv API has no paper 2301.99999" in capsys.readouterr().err


def test_new_from_flags_for_a_paper_not_on_arxiv(api, catalogue_dir):
    assert (
        new(
            catalogue_dir,
            "--title",
            "Relational Distillation for Detectors",
            "--author",
            "Doe, Jane",
            "--author",
            "John Smith",
            "--year",
            "2023",
            "--venue",
            "cvpr",
            "--paper",
            "https://openaccess.thecvf.com/x.html",
            *FLAGS,
        )
        == 0
    )
    paper = next(p for p in load(catalogue_dir).papers if p.id == "doe2023relational")
    assert paper.authors == ["Doe, Jane", "Smith, John"] and paper.links.arxiv is None
    assert api.log == []  # nothing fetched


def test_new_from_a_doi_through_crossref(api, catalogue_dir):
    assert new(catalogue_dir, "--doi", "https://doi.org/10.1109/TIP.2023.1", *FLAGS) == 0
    paper = next(p for p in load(catalogue_dir).papers if p.id == "wang2024channel")
    assert paper.authors == ["Wang, Li", "Müller, Anna"]
    assert (paper.year, paper.venue, paper.links.doi) == (2024, "tip", "10.1109/TIP.2023.1")
    assert str(paper.links.paper) == "https://doi.org/10.1109/TIP.2023.1"


def test_new_needs_a_source(catalogue_dir, capsys):
    assert new(catalogue_dir) == 2
    assert "--arxiv ID" in capsys.readouterr().err


def _contributing_examples() -> list[list[str]]:
    """The ``kdsurvey new --arxiv`` commands of CONTRIBUTING.md, as argument lists."""
    import re
    import shlex

    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = [
        shlex.split(cmd.replace("\\\n", " "))
        for block in blocks
        for cmd in block.split("\n\n")
        if cmd.startswith("kdsurvey new --arxiv")
    ]
    return [[word for word in cmd[1:] if not word.startswith("#")] for cmd in commands]


def test_contributing_examples_add_a_paper_that_is_not_catalogued(capsys):
    """A new contributor's first command works: its paper is not in the catalogue yet, and the
    offline example writes a record (dry run) that only lacks what the example leaves out."""
    examples = _contributing_examples()
    assert len(examples) == 2
    catalogued = {p.links.arxiv for p in load(PAPERS).papers}
    for argv in examples:
        assert argv[argv.index("--arxiv") + 1] not in catalogued, argv
    offline = next(argv for argv in examples if "--offline" in argv)
    assert main([*offline, "--papers", str(PAPERS), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "dry run, nothing written; still to fill in:" in err and "loss" in err
