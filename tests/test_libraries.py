"""papers/libraries.yaml: every loss of RepDistiller, mdistiller and torchdistill mapped to a
kdsurvey loss (or to none, saying why), validated with located errors, and turned into table rows
whose evidence comes from the losses' manifest."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import PAPERS

from kdsurvey.losses import manifest
from kdsurvey.records import libraries
from kdsurvey.records.catalogue import record_paths

FILE = PAPERS / libraries.LIBRARIES_FILE
SHA = "0123456789abcdef0123456789abcdef01234567"


def test_committed_file_covers_the_three_libraries():
    libs = {lib.name: lib for lib in libraries.load(FILE)}
    assert {"RepDistiller", "mdistiller", "torchdistill"} <= set(libs)
    assert libs["RepDistiller"].repo == "HobbitLong/RepDistiller"
    assert libs["mdistiller"].repo == "megvii-research/mdistiller"
    assert libs["torchdistill"].repo == "yoshitomo-matsubara/torchdistill"


def test_every_named_loss_is_registered_and_no_library_lists_a_name_twice():
    known = manifest.names()
    for lib in libraries.load(FILE):
        names = [e.name for e in lib.entries]
        assert len(names) == len(set(names)), f"{lib.name} lists a name twice"
        for e in lib.entries:
            assert e.loss is None or e.loss in known, f"{lib.name} {e.name}: {e.loss}"
            assert e.loss is not None or e.note, f"{lib.name} {e.name}: no loss and no reason"


def test_the_file_is_not_read_as_a_paper_record():
    assert FILE not in record_paths(PAPERS)


def test_rows_take_evidence_and_reference_from_the_manifest():
    rows = libraries.rows(libraries.load(FILE))
    by_name = {e["name"]: e for e in manifest.load()["losses"]}
    assert rows and len(rows) == sum(len(lib.entries) for lib in libraries.load(FILE))
    for row in rows:
        if row.loss is None:
            assert row.evidence is None and row.reference_repo is None
            assert not row.library_code_run
            continue
        entry = by_name[row.loss]
        assert row.evidence == entry["evidence"]
        assert row.reference_repo == (entry["reference"] or {}).get("repo")
    rep = {r.name: r for r in rows if r.library == "RepDistiller"}
    assert rep["CRDLoss"].loss == "crd" and rep["CRDLoss"].library_code_run


def _write(tmp_path, text):
    path = tmp_path / "libraries.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


GOOD = f"""\
    Lib:
      repo: owner/lib
      commit: {SHA}
      losses:
        - name: KDLoss
          path: losses.py
          loss: kd
        - name: Helper
          path: losses.py
          loss: null
          note: not a distillation loss
    """


def test_rows_from_a_small_file_and_manifest(tmp_path):
    libs = libraries.load(_write(tmp_path, GOOD), known={"kd"})
    fake = {
        "losses": [
            {
                "name": "kd",
                "evidence": "reference",
                "reference": {"repo": "other/repo", "cross_checked": ["owner/lib"]},
            }
        ]
    }
    first, second = libraries.rows(libs, fake)
    assert (first.library, first.name, first.loss, first.evidence) == (
        "Lib",
        "KDLoss",
        "kd",
        "reference",
    )
    assert first.reference_repo == "other/repo" and first.library_code_run
    assert (
        second.loss is None and second.evidence is None and second.note == "not a distillation loss"
    )
    fake["losses"][0]["reference"]["cross_checked"] = []
    assert not libraries.rows(libs, fake)[0].library_code_run


def _problems(path, known=("kd",)):
    with pytest.raises(libraries.LibrariesError) as err:
        libraries.load(path, known=known)
    return [str(p) for p in err.value.problems]


def test_unknown_loss_is_located_and_suggests_a_name(tmp_path):
    path = _write(tmp_path, GOOD.replace("loss: kd", "loss: kdd"))
    (problem,) = _problems(path)
    assert ":7: Lib.losses[0].loss: unknown loss 'kdd'" in problem
    assert problem.endswith("did you mean kd?")


def test_a_name_listed_twice_is_located(tmp_path):
    path = _write(tmp_path, GOOD.replace("name: Helper", "name: KDLoss"))
    (problem,) = _problems(path)
    assert ":8: Lib.losses[1].name:" in problem and "listed twice (first at line 5)" in problem


def test_an_entry_without_loss_needs_a_note(tmp_path):
    path = _write(tmp_path, GOOD.replace("          note: not a distillation loss\n", ""))
    (problem,) = _problems(path)
    assert ":8: Lib.losses[1].note:" in problem


def test_schema_errors_are_located(tmp_path):
    path = _write(
        tmp_path,
        GOOD.replace(SHA, "abc").replace(
            "path: losses.py\n          loss: kd", "path: losses.py\n          los: kd"
        ),
    )
    problems = _problems(path)
    assert any(":3: Lib.commit:" in p for p in problems)
    assert any("Lib.losses[0]" in p for p in problems)


def test_missing_file(tmp_path):
    (problem,) = _problems(tmp_path / "libraries.yaml")
    assert "is missing" in problem


def test_load_and_rows_are_torch_free():
    code = (
        "import sys; from kdsurvey.records import libraries; "
        f"rows = libraries.rows(libraries.load({str(FILE)!r})); "
        "assert rows and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validate_reports_a_bad_libraries_file(tmp_path, capsys):
    import shutil

    from kdsurvey.cli import main

    papers = shutil.copytree(PAPERS, tmp_path / "papers")
    path = papers / libraries.LIBRARIES_FILE
    path.write_text(path.read_text(encoding="utf-8").replace("loss: kdsvd\n", "loss: kdsvdx\n", 1))
    assert main(["validate", "--papers", str(papers)]) == 1
    err = capsys.readouterr().err
    assert "libraries.yaml:" in err and "unknown loss 'kdsvdx'" in err


def test_the_coverage_page_shows_every_row():
    from kdsurvey.exporters.site.pages import render_pages
    from kdsurvey.records.catalogue import load

    page = render_pages(load(PAPERS))["libraries.md"]
    for row in libraries.rows(libraries.load(FILE)):
        assert f"`{row.name}`" in page
    assert "[`crd`](losses/crd.md)" in page
