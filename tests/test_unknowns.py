"""Unknowns are first-class: ``unconfirmed:`` fields, records without authors, and where they show
(metadata warnings, README marker, help page, exports); plus the two losses written without code."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import GOOD, PAPERS, require

from kdsurvey.checks import metadata
from kdsurvey.exporters import citations, readme, site
from kdsurvey.exporters.view import View
from kdsurvey.records.catalogue import CatalogueError, load
from kdsurvey.records.model import citation_key
from kdsurvey.records.unknowns import export_warnings, unknowns, with_unknowns

NO_AUTHOR = """\
id: unknown2023local
title: Local structure consistency and pixel-correlation distillation
authors: []
year: 2023
venue: apin
category: similarity
tasks: [segmentation]
links:
  paper: https://link.springer.com/article/10.1007/s10489-022-03656-4
loss: local_structure
summary: Patch-level SSIM and pixel correlations.
"""
EXPLAINED = "unconfirmed:\n  authors: No author names were found in the sources searched.\n"


def _write(folder, name, text):
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def _problems(folder):
    with pytest.raises(CatalogueError) as err:
        load(folder)
    return err.value.problems


def test_empty_authors_need_unconfirmed_authors(catalogue_dir):
    _write(catalogue_dir, "unknown2023local", NO_AUTHOR)
    problems = _problems(catalogue_dir)
    assert [(p.field, "unconfirmed.authors" in p.message) for p in problems] == [
        ("unconfirmed", True)
    ]


def test_empty_authors_with_unconfirmed_authors_load(catalogue_dir):
    _write(catalogue_dir, "unknown2023local", NO_AUTHOR + EXPLAINED)
    paper = {p.id: p for p in load(catalogue_dir).papers}["unknown2023local"]
    assert paper.authors == [] and paper.key == "unknown2023local"
    assert list(paper.unconfirmed) == ["authors"]


def test_no_author_id_rule_uses_unknown(catalogue_dir):
    assert citation_key(None, 2024, "Knowledge Distillation via ...") == "unknown2024knowledge"
    _write(
        catalogue_dir,
        "smith2023local",
        NO_AUTHOR.replace("unknown2023local", "smith2023local") + EXPLAINED,
    )
    problems = _problems(catalogue_dir)
    assert any(p.field == "id" and "'unknown2023local'" in p.message for p in problems)


def test_unknown_unconfirmed_key_is_a_located_error(catalogue_dir):
    text = GOOD + "unconfirmed:\n  doi: Not found.\n  colour: Not a field.\n"
    _write(catalogue_dir, "hinton2015distilling", text)
    (problem,) = _problems(catalogue_dir)
    assert problem.field == "unconfirmed.colour"
    assert problem.line == text.splitlines().index("  colour: Not a field.") + 1


def test_unconfirmed_sentence_is_one_line(catalogue_dir):
    _write(catalogue_dir, "hinton2015distilling", GOOD + "unconfirmed:\n  doi: ''\n")
    assert [p.field for p in _problems(catalogue_dir)] == ["unconfirmed.doi"]


def test_survey_category_only_when_it_differs(catalogue_dir):
    same = GOOD.replace("category: logit\n", "category: logit\nsurvey_category: logit\n")
    _write(catalogue_dir, "hinton2015distilling", same)
    assert [p.field for p in _problems(catalogue_dir)] == ["survey_category"]
    other = GOOD.replace("category: logit\n", "category: logit\nsurvey_category: feature\n")
    _write(catalogue_dir, "hinton2015distilling", other)
    assert load(catalogue_dir).papers[0].survey_category.value == "feature"


@pytest.fixture(scope="module")
def real():
    return load(PAPERS)


def test_catalogue_holds_the_64_seed_papers_each_with_a_loss(real):
    from kdsurvey.losses.manifest import names
    from kdsurvey.records import survey

    ids = {p.id for p in real.papers}
    seed = survey.load(PAPERS / survey.SURVEY_FILE, ids)
    assert seed.title == "A Comprehensive Survey on Knowledge Distillation"
    assert len(seed.papers) == len(set(seed.papers)) == 64
    assert all(set(p.loss) <= names() for p in real.papers)
    assert {"unknown2023local", "unknown2024knowledge"} <= set(seed.papers)
    text = " ".join(readme.render(real).split())
    assert f"It started from the 64 papers of *{seed.title}*, all of them here" in text
    rethinking = {p.id: p for p in real.papers}["liu2024rethinking"]
    assert rethinking.authors == ["Liu, Tao"] and "authors" in rethinking.unconfirmed


def test_metadata_lists_every_unconfirmed_field_as_a_warning(real):
    found = [f for f in metadata.check(real) if f.field.startswith("unconfirmed.")]
    assert len(found) == len(unknowns(real.papers)) > 0
    assert {f.severity for f in found} == {metadata.WARNING}


def test_metadata_cli_counts_them_and_strict_fails(capsys):
    from kdsurvey.cli import main

    assert main(["check", "metadata", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["unconfirmed"] == len(unknowns(load(PAPERS).papers))
    assert main(["check", "metadata"]) == 0
    assert f"{data['unconfirmed']} unconfirmed field(s)" in capsys.readouterr().out
    assert main(["check", "metadata", "--strict"]) == 1


def test_help_page_lists_exactly_the_unconfirmed_records(real):
    pages = site.render_pages(real, site.Links("https://github.com/o/r"))
    page = pages["help.md"]
    listed = {p.id for p in real.papers if f"{{ #{p.id} " in page}
    assert listed == {p.id for p in with_unknowns(real.papers)}
    assert "https://github.com/o/r/edit/main/papers/unknown2023local.yaml" in page
    assert "https://link.springer.com/article/10.1007/s10489-022-03656-4" in page
    paper = pages["papers/unknown2023local.md"]
    assert "Help wanted" in paper and "Authors unknown" in paper
    assert "Not verified: written from the abstract alone" in paper
    assert "Not verified: a guess from the title alone" in pages["papers/unknown2024knowledge.md"]
    assert "help wanted" in pages["_include/home-stats.md"]


def test_readme_marks_unconfirmed_entries(real):
    text = readme.render(real)
    assert text.count(View(real).help_url + "#") == len(with_unknowns(real.papers))
    assert (
        f"**{len(real.papers)} papers**" in text and "from the abstract or the title only" in text
    )


def test_exports_invent_no_name(real):
    papers = [p for p in real.papers if p.id in ("unknown2023local", "liu2024rethinking")]
    bib = citations.bibtex(real, papers)
    local = bib.split("@", 2)[2]
    assert "author" not in local and "key" in local and "Authors unknown" in local
    assert "Liu, Tao and others" in bib
    assert len(export_warnings(papers)) == 1
    csl = json.loads(citations.csl_json(real, papers))
    assert csl[1]["author"] == [] and "authors" in csl[1]["unconfirmed"]
    data = json.loads(citations.as_json(real, papers))
    assert data[1]["unconfirmed"]["year"]
    assert "pages: " in citations.as_csv(real, papers)


def test_export_bibtex_warns_on_stderr(capsys):
    from kdsurvey.cli import main

    assert main(["export", "bibtex", "--ids", "unknown2023local"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown2023local" in err[0]


# -- the two losses, by hand ------------------------------------------------------------------


@pytest.fixture
def torch():
    """torch, for the losses' tests (the losses extra); the catalogue's tests above need none."""
    return require("torch", "the losses extra")


def test_local_structure_ssim_by_hand(torch):
    from kdsurvey.losses import create

    # One image, two classes, 2x1 maps, one 2-pixel... window 1 makes SSIM pixelwise.
    s = torch.tensor([[[[0.0]], [[0.0]]]])  # p_s = (0.5, 0.5)
    t = torch.tensor([[[[math.log(3.0)]], [[0.0]]]])  # p_t = (0.75, 0.25)
    f = torch.ones(1, 1, 1, 1)
    loss = create("local_structure", window=1, correlation_weight=0.0, c1=0.01, c2=0.03)
    c1 = 0.01
    # window 1: variances and covariance are 0, so SSIM = luminance only.
    lum = [
        (2 * 0.5 * 0.75 + c1) / (0.25 + 0.5625 + c1),
        (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1),
    ]
    expected = 1 - sum(lum) / 2
    assert loss(s, t, f, f).item() == pytest.approx(expected, rel=1e-6)


def test_pixel_correlation_by_hand(torch):
    from kdsurvey.losses import create

    maps = torch.zeros(1, 2, 3, 3)
    # Student pixels (1,0) and (0,1): cosine 0; teacher pixels both (1,0): cosine 1.
    fs = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    ft = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])
    loss = create("local_structure", structure_weight=0.0)
    # A^t - A^s = [[0, 1], [1, 0]]: mean of squares 2/4.
    assert loss(maps, maps, fs, ft).item() == pytest.approx(0.5)


def test_inter_intra_relation_by_hand(torch):
    from kdsurvey.losses import create

    # Two samples, one position each: intra relations are all 1 for both, so only inter counts.
    fs = torch.tensor([[[[1.0]], [[0.0]]], [[[0.0]], [[1.0]]]])  # orthogonal: cosine 0
    ft = torch.tensor([[[[1.0]], [[0.0]]], [[[1.0]], [[0.0]]]])  # parallel: cosine 1
    loss = create("inter_intra_relation")
    # G^t - G^s off-diagonals 1, diagonals 0: mean of squares 2/4.
    assert loss(fs, ft).item() == pytest.approx(0.5)


def test_survey_file_reports_missing_and_repeated_ids(tmp_path, capsys):
    from kdsurvey.cli import main
    from kdsurvey.records import survey

    text = (PAPERS / survey.SURVEY_FILE).read_text(encoding="utf-8")
    first = survey.load(PAPERS / survey.SURVEY_FILE, {p.id for p in load(PAPERS).papers}).papers[0]
    bad = text.replace(f"  - {first}\n", f"  - {first}\n  - {first}\n  - nobody2099nothing\n")
    lines = bad.splitlines()
    folder = tmp_path / "papers"
    shutil.copytree(PAPERS, folder)
    (folder / survey.SURVEY_FILE).write_text(bad, encoding="utf-8")
    assert main(["validate", "--papers", str(folder)]) == 1
    err = capsys.readouterr().err
    twice = lines.index(f"  - {first}") + 2  # the second listing, 1-based
    assert f"survey.yaml:{twice}: papers[1]: {first} is listed twice" in err
    assert f"survey.yaml:{twice + 1}: papers[2]: no record papers/nobody2099nothing.yaml" in err
