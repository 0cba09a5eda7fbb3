"""Validation: every rule rejects a crafted bad record with the right file, line and field."""

from __future__ import annotations

import pytest
from conftest import GOOD, PAPERS, ROOT

from kdsurvey.records.catalogue import CatalogueError, load, validate_record
from kdsurvey.records.model import citation_key


def problems_of(papers):
    with pytest.raises(CatalogueError) as err:
        load(papers)
    return [(p.path.rsplit("/", 1)[-1], p.line, p.field, p.message) for p in err.value.problems]


def write(papers, name, text):
    path = papers / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def edit(line_from, line_to):
    assert line_from in GOOD
    return GOOD.replace(line_from, line_to)


def test_real_catalogue_validates_clean():
    catalogue = load(PAPERS)
    assert len(catalogue.papers) >= 60
    assert {p.category.value for p in catalogue.papers} == {"logit", "feature", "similarity"}
    for paper in catalogue.papers:
        assert paper.venue in catalogue.venues


def test_good_record_loads(catalogue_dir):
    catalogue = load(catalogue_dir)
    [paper] = catalogue.papers
    assert paper.id == "hinton2015distilling" and paper.loss == ["kd"]
    assert catalogue.line_of(paper, "links", "arxiv") == 14


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        ("year: 2015", "year: 2099", 8, "year", "less than or equal"),
        ("year: 2015", "year: twenty", 8, "year", "integer"),
        ("venue: arxiv", "venue: nowhere", 9, "venue", "unknown venue 'nowhere'"),
        ("category: logit", "category: logits", 10, "category", "'logit'"),
        ("tasks: [classification]", "tasks: [knitting]", 11, "tasks[0]", "unknown task 'knitting'"),
        ("  - Vinyals, Oriol", "  - Oriol Vinyals", 6, "authors[1]", "Family, Given"),
        ('  arxiv: "1503.02531"', '  arxiv: "2203.0867"', 14, "links.arxiv", "arXiv id"),
        (
            '  arxiv: "1503.02531"',
            '  arxiv: "1503.02531"\n  doi: https://doi.org/10.1/x',
            15,
            "links.doi",
            "bare DOI",
        ),
        (
            "  paper: https://arxiv.org/abs/1503.02531",
            "  paper: not a url",
            13,
            "links.paper",
            "URL",
        ),
        (
            '  arxiv: "1503.02531"',
            '  arxiv: "1503.02531"\n  code: https://github.com/a/b/tree/x',
            15,
            "links.code",
            "github.com/<owner>/<repo>",
        ),
        ("loss: kd", "loss: nope", 15, "loss", "no loss 'nope'"),
        ("loss: kd", "loss: [kd, nope]", 15, "loss[1]", "no loss 'nope'"),
        ("summary: The", "colour: red\nsummary: The", 16, "colour", "unknown field"),
        # the usual typos get a "did you mean"
        ("summary: The", "summery: x\nsummary: The", 16, "summery", "did you mean 'summary'?"),
        ('  arxiv: "1503.02531"', '  arxiv: "1503.02531"\n  cod: x', 15, "links.cod", "'code'?"),
        ("venue: arxiv", "venue: CVPR", 9, "venue", "unknown venue 'CVPR'; did you mean 'cvpr'?"),
        ("venue: arxiv", "venue: NeurIPS", 9, "venue", "did you mean 'neurips'?"),
        ("venue: arxiv", "venue: cvpt", 9, "venue", "did you mean 'cvpr'?"),
        (
            "loss: kd",
            "loss: DKD",
            15,
            "loss",
            "no loss 'DKD' in kdsurvey.losses: did you mean 'dkd'?",
        ),
        ("loss: kd", "pages: 12-x\nloss: kd", 15, "pages", "written first--last (10925--10934)"),
        ("title: Distilling the", "title: Distilling  the", 3, "title", "one line"),
    ],
)
def test_rule_rejects_with_location(catalogue_dir, old, new, line, field, message):
    write(catalogue_dir, "hinton2015distilling.yaml", edit(old, new))
    [(name, got_line, got_field, got_message)] = [
        p for p in problems_of(catalogue_dir) if p[2] == field
    ]
    assert name == "hinton2015distilling.yaml"
    assert (got_line, got_field) == (line, field)
    assert message in got_message


def test_missing_required_field(catalogue_dir):
    write(catalogue_dir, "hinton2015distilling.yaml", edit("venue: arxiv\n", ""))
    assert ("hinton2015distilling.yaml", 2, "venue", "Field required") in problems_of(catalogue_dir)


def test_id_must_match_file_name(catalogue_dir):
    (catalogue_dir / "hinton2015distilling.yaml").unlink()
    write(catalogue_dir, "hinton2015distillingb.yaml", GOOD)
    [problem] = problems_of(catalogue_dir)
    assert problem[1:3] == (2, "id") and "file name" in problem[3]


def test_id_must_follow_key_rule(catalogue_dir):
    (catalogue_dir / "hinton2015distilling.yaml").unlink()
    text = GOOD.replace("hinton2015distilling", "hinton2015knowledge")
    write(catalogue_dir, "hinton2015knowledge.yaml", text)
    [problem] = problems_of(catalogue_dir)
    assert problem[1:3] == (2, "id") and "'hinton2015distilling'" in problem[3]


def test_collision_suffix_is_allowed(catalogue_dir):
    (catalogue_dir / "hinton2015distilling.yaml").unlink()
    text = GOOD.replace("id: hinton2015distilling", "id: hinton2015distillingb")
    write(catalogue_dir, "hinton2015distillingb.yaml", text)
    assert load(catalogue_dir).papers[0].id == "hinton2015distillingb"


@pytest.mark.parametrize(
    ("authors", "year", "title", "key"),
    [
        (
            ["Hinton, Geoffrey"],
            2015,
            "Distilling the Knowledge in a Neural Network",
            "hinton2015distilling",
        ),
        (["Yim, Junho"], 2017, "A Gift from Knowledge Distillation", "yim2017gift"),
        (["Passban, Peyman"], 2021, "ALP-KD: Attention-Based Layer Projection", "passban2021alp"),
        (["Kölsch, Björn"], 2020, "On the Über Model", "kolsch2020uber"),
        (
            ["van der Maaten, Laurens"],
            2008,
            "Visualizing Data using t-SNE",
            "vandermaaten2008visualizing",
        ),
    ],
)
def test_id_rule(authors, year, title, key):
    assert citation_key(authors[0], year, title) == key


def test_duplicate_papers_are_caught(catalogue_dir):
    twin = GOOD.replace("Hinton, Geoffrey", "Hinton, G.")
    twin = twin.replace("title: Distilling the", "title: Distilling  the").replace("  the", " the")
    twin = twin.replace("id: hinton2015distilling", "id: hinton2015distillinga")
    write(catalogue_dir, "hinton2015distillinga.yaml", twin)
    problems = problems_of(catalogue_dir)
    fields = {p[2] for p in problems if p[0] == "hinton2015distillinga.yaml"}
    assert fields == {"title", "links.arxiv"}
    assert all("hinton2015distilling.yaml" in p[3] for p in problems)


def test_duplicate_doi_is_caught_case_insensitively(catalogue_dir):
    base = GOOD.replace('  arxiv: "1503.02531"', "  doi: 10.1109/ABC.2015.1")
    write(catalogue_dir, "hinton2015distilling.yaml", base)
    other = (
        base.replace("doi: 10.1109/ABC", "doi: 10.1109/abc")
        .replace("title: Distilling the Knowledge", "title: Distilling Other Knowledge")
        .replace("id: hinton2015distilling", "id: hinton2015distillinga")
    )
    write(catalogue_dir, "hinton2015distillinga.yaml", other)
    [problem] = problems_of(catalogue_dir)
    assert problem[:3] == ("hinton2015distillinga.yaml", 14, "links.doi")


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (GOOD.replace("year: 2015\n", "year: 2015\nyear: 2016\n"), 9, "duplicate key 'year'"),
        (GOOD.replace("  - Dean, Jeff", "\t- Dean, Jeff"), 7, "tab"),
        (b"", 1, "is empty"),
        (b"# only a comment\n", 1, "is empty"),
        (GOOD.encode("utf-8").replace(b"Dean", b"D\xe9an"), 7, "not UTF-8"),
        (GOOD.replace("tasks: [classification]", "tasks: [classification"), 12, "invalid YAML"),
        (b"- just\n- a list\n", 1, "mapping"),
    ],
)
def test_file_level_problems(catalogue_dir, content, line, message):
    write(catalogue_dir, "hinton2015distilling.yaml", content)
    [problem] = problems_of(catalogue_dir)
    assert problem[1:3] == (line, "file")
    assert message in problem[3]


def test_all_errors_of_all_files_at_once(catalogue_dir):
    write(catalogue_dir, "hinton2015distilling.yaml", edit("year: 2015", "year: 1900"))
    write(catalogue_dir, "zz2020bad.yaml", b"")
    other = GOOD.replace("venue: arxiv", "venue: nowhere").replace("loss: kd", "loss: nope")
    write(
        catalogue_dir,
        "hinton2015distillinga.yaml",
        other.replace("id: hinton2015distilling", "id: hinton2015distillinga"),
    )
    problems = problems_of(catalogue_dir)
    files = {p[0] for p in problems}
    assert files == {"hinton2015distilling.yaml", "zz2020bad.yaml", "hinton2015distillinga.yaml"}
    assert len(problems) >= 5


def test_bad_venue_table_is_located(catalogue_dir):
    venues = (catalogue_dir / "venues.yaml").read_text()
    write(catalogue_dir, "venues.yaml", venues.replace("kind: preprint", "kind: blog", 1))
    problems = problems_of(catalogue_dir)
    assert any(p[0] == "venues.yaml" and p[2] == "arxiv.kind" for p in problems)


def test_missing_folder():
    [problem] = problems_of("/nonexistent/papers")
    assert problem[2:] == ("folder", "does not exist")


def test_parallel_load_gives_what_one_process_gives(catalogue_dir, monkeypatch):
    import kdsurvey.records.catalogue as catalogue_module

    for i in range(30):
        title = f"Distilling Variant {i} of Knowledge"
        text = GOOD.replace("Distilling the Knowledge in a Neural Network", title)
        text = text.replace('"1503.02531"', f'"1503.{i + 10000}"')
        text = text.replace(
            "id: hinton2015distilling", f"id: hinton2015distilling{chr(97 + i % 26)}"
        )
        name = f"hinton2015distilling{chr(97 + i % 26)}"
        if (catalogue_dir / f"{name}.yaml").exists():
            continue
        write(catalogue_dir, f"{name}.yaml", text)
    sequential = load(catalogue_dir)
    monkeypatch.setattr(catalogue_module, "PARALLEL_FROM", 5)
    monkeypatch.setattr(catalogue_module, "CHUNK", 4)
    parallel = load(catalogue_dir)
    assert len(parallel.papers) == len(sequential.papers) == 27
    assert parallel.papers == sequential.papers
    write(catalogue_dir, "hinton2015distillingc.yaml", edit("year: 2015", "year: 1900"))
    monkeypatch.setattr(catalogue_module, "PARALLEL_FROM", 10**9)
    want = problems_of(catalogue_dir)
    monkeypatch.setattr(catalogue_module, "PARALLEL_FROM", 5)
    assert problems_of(catalogue_dir) == want and want


def test_validate_record_checks_one_text_without_a_catalogue(tmp_path):
    venues = load(PAPERS, check_losses=False).venues
    path = tmp_path / "hinton2015distilling.yaml"
    assert validate_record(GOOD, path, venues, {"kd"}) == []
    assert not path.exists()  # nothing is written, nothing copied
    bad = GOOD.replace("venue: arxiv", "venue: nowhere").replace("loss: kd", "loss: nope")
    found = validate_record(bad, path, venues, {"kd"})
    assert [(p.line, p.field) for p in found] == [(9, "venue"), (15, "loss")]
    assert "no loss 'nope'" in found[1].message
    assert [p.field for p in validate_record("", path, venues)] == ["file"]


def test_unknown_loss_says_what_to_do_next(catalogue_dir):
    write(catalogue_dir, "hinton2015distilling.yaml", edit("loss: kd", "loss: kdd"))
    [(name, line, field, message)] = problems_of(catalogue_dir)
    assert (name, line, field) == ("hinton2015distilling.yaml", 15, "loss")
    assert "no loss 'kdd'" in message and "did you mean 'kd'" in message
    # a loss that does not exist yet: where the contributor reads how to add one, and the step
    # that makes it known to the catalogue
    for step in (
        "kdsurvey losses list",
        'CONTRIBUTING.md, "A new loss"',
        "kdsurvey losses manifest",
    ):
        assert step in message
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "\n## A new loss\n" in contributing
    for fact in ("cites the record id", "evidence.py", "official_cases/README.md"):
        assert fact in contributing


def test_a_task_is_one_line_of_data(catalogue_dir):
    """Tasks are data (papers/tasks.yaml): a record may name one only after it is added there,
    and the site shows the title the file gives."""
    from kdsurvey.exporters.site.markdown import task_label, task_lower

    record = catalogue_dir / "hinton2015distilling.yaml"
    record.write_text(
        GOOD.replace("tasks: [classification]", "tasks: [classification, knitting]"),
        encoding="utf-8",
    )
    with pytest.raises(CatalogueError) as exc:
        load(catalogue_dir)
    assert [(p.line, p.field) for p in exc.value.problems] == [(11, "tasks[1]")]
    assert "unknown task 'knitting'" in exc.value.problems[0].message
    tasks = catalogue_dir / "tasks.yaml"
    tasks.write_text(tasks.read_text(encoding="utf-8") + "knitting:\n  title: KNIT-ting\n")
    catalogue = load(catalogue_dir)
    assert catalogue.papers[0].tasks == ["classification", "knitting"]
    assert task_label("knitting", catalogue.tasks) == "KNIT-ting"
    assert task_lower("3d-detection", catalogue.tasks) == "3D detection"
    assert task_lower("classification", catalogue.tasks) == "classification"


@pytest.mark.parametrize("written", ["10925-10934", "10925--10934", "10925–10934", "10925 - 10934"])
def test_a_page_range_may_be_written_with_one_hyphen(catalogue_dir, written):
    write(
        catalogue_dir, "hinton2015distilling.yaml", edit("loss: kd", f"pages: {written}\nloss: kd")
    )
    [paper] = load(catalogue_dir).papers
    assert paper.pages == "10925--10934"


RESULT = (
    "results:\n  - {benchmark: cifar100, teacher: resnet32x4, student: resnet8x4, metric: top1, "
    "value: VALUE, method: KD, role: baseline, baseline: kd, source: Table 2EXTRA}\n"
)


def _with_result(catalogue_dir, value, extra=""):
    import shutil

    shutil.copy(PAPERS / "benchmarks.yaml", catalogue_dir / "benchmarks.yaml")
    text = GOOD + RESULT.replace("VALUE", value).replace("EXTRA", extra)
    write(catalogue_dir, "hinton2015distilling.yaml", text)


def test_a_fraction_on_a_percentage_metric_is_refused(catalogue_dir):
    _with_result(catalogue_dir, '"0.783"')
    [problem] = [p for p in problems_of(catalogue_dir) if p[2] == "results[0].value"]
    assert (
        problem[1] == 18
        and 'looks like a fraction, but top1 is a percentage: write "78.3"' in problem[3]
    )
    assert "below_one: true" in problem[3]
    _with_result(catalogue_dir, '"0.78"', ", below_one: true")  # the paper prints 0.78 %
    assert load(catalogue_dir).papers[0].results[0].value == "0.78"
    _with_result(catalogue_dir, '"1.05"')  # not below one: a percentage
    assert load(catalogue_dir).papers[0].results[0].value == "1.05"


@pytest.mark.parametrize(
    ("written", "advice"), [("76.30", '"76.30"'), ("76.3", '"76.3"'), ("77", '"77"')]
)
def test_an_unquoted_value_is_advised_as_written(catalogue_dir, written, advice):
    _with_result(catalogue_dir, written)
    [problem] = [p for p in problems_of(catalogue_dir) if p[2] == "results[0].value"]
    assert f"quoted as a string ({advice})" in problem[3]
