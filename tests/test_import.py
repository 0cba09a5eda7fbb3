"""BibTeX in (``kdsurvey import bibtex``) and the shared record writer (``records.record_yaml``)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import PAPERS, ROOT

from kdsurvey.cli import main
from kdsurvey.exporters import citations
from kdsurvey.importers.bibtex import (
    ImportFailure,
    Options,
    arxiv_id,
    authors,
    import_bibtex,
    latex_to_text,
    match_venue,
)
from kdsurvey.records.catalogue import CatalogueError, load
from kdsurvey.records.textrules import title_case
from kdsurvey.records.writer import FIELDS, HEADER, record_yaml

FIXTURES = ROOT / "tests" / "fixtures" / "citations"

DBLP = r"""
@inproceedings{DBLP:conf/cvpr/ZhaoCSQL22,
  author       = {Borui Zhao and
                  Quan Cui and
                  Renjie Song and
                  Yiyu Qiu and
                  Jiajun Liang},
  title        = {Decoupled Knowledge Distillation},
  booktitle    = {{IEEE/CVF} Conference on Computer Vision and Pattern Recognition,
                  {CVPR} 2022, New Orleans, LA, USA, June 18-24, 2022},
  pages        = {11943--11952},
  publisher    = {{IEEE}},
  year         = {2022},
  url          = {https://doi.org/10.1109/CVPR52688.2022.01165},
  doi          = {10.1109/CVPR52688.2022.01165},
  timestamp    = {Wed, 05 Oct 2022 16:31:19 +0200},
  biburl       = {https://dblp.org/rec/conf/cvpr/ZhaoCSQL22.bib},
  bibsource    = {dblp computer science bibliography, https://dblp.org}
}
"""

DBLP_YAML = """\
# yaml-language-server: $schema=schema.json
id: zhao2022decoupled
title: Decoupled Knowledge Distillation
authors:
  - Zhao, Borui
  - Cui, Quan
  - Song, Renjie
  - Qiu, Yiyu
  - Liang, Jiajun
year: 2022
venue: cvpr
category: null  # TODO: one of logit, feature, similarity
tasks: null  # TODO: a list such as [classification, detection] (keys of papers/tasks.yaml)
links:
  paper: https://doi.org/10.1109/CVPR52688.2022.01165
  doi: 10.1109/CVPR52688.2022.01165
loss: null  # TODO: registry name(s) in kdsurvey.losses, main one first (kdsurvey losses list)
pages: "11943--11952"
summary: null  # TODO: one plain sentence: what is distilled and how
notes: Imported from the BibTeX entry DBLP:conf/cvpr/ZhaoCSQL22.
"""

SCHOLAR = r"""
@article{muller2020uber,
  title={{\"U}ber {KD}: accents and {F}amily, {G}iven names},
  author={M{\"u}ller, J{\"u}rgen and Garc{\'\i}a-L\'{o}pez, Jos\'e and
          Ludwig van Beethoven and Jian Sun 0001},
  journal={IEEE Trans. Pattern Anal. Mach. Intell.},
  volume={42},
  number={11},
  pages={1-10},
  year={2020},
  publisher={IEEE}
}
"""


@pytest.fixture
def empty_dir(tmp_path):
    """A catalogue folder with the real venues and categories and no records."""
    folder = tmp_path / "papers"
    folder.mkdir()
    for name in ("venues.yaml", "categories.yaml", "tasks.yaml"):
        shutil.copy(PAPERS / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def venues():
    return load(PAPERS, check_losses=False).venues


def bib_file(tmp_path, text, name="in.bib"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- record_yaml --------------------------------------------------------------------------------


def test_record_yaml_rewrites_every_real_record_to_the_same_data(tmp_path):
    catalogue = load(PAPERS, check_losses=False)
    out = tmp_path / "papers"
    out.mkdir()
    for name in ("venues.yaml", "categories.yaml", "tasks.yaml", "benchmarks.yaml"):
        shutil.copy(PAPERS / name, out / name)
    for paper in catalogue.papers:
        text = record_yaml(paper.model_dump(mode="json", exclude_none=True))
        assert text.startswith(HEADER + "\n")
        original = yaml.safe_load((PAPERS / f"{paper.id}.yaml").read_text(encoding="utf-8"))
        written = yaml.safe_load(text)
        for data in (original, written):
            data["loss"] = [data["loss"]] if isinstance(data["loss"], str) else data["loss"]
        assert written == original, paper.id
        assert list(written) == [k for k in FIELDS if k in written]
        (out / f"{paper.id}.yaml").write_text(text, encoding="utf-8")
    assert [p.id for p in load(out, check_losses=False).papers] == [p.id for p in catalogue.papers]


def test_record_yaml_styles():
    text = record_yaml(
        {
            "id": "li2024ntce",
            "title": "NTCE-KD: Non-Target-Class-Enhanced Knowledge Distillation",
            "authors": ["Li, Chuan"],
            "year": 2024,
            "venue": "sensors",
            "category": "logit",
            "tasks": ["classification", "detection"],
            "links": {
                "paper": "https://www.mdpi.com/1424-8220/24/11/3617",
                "arxiv": "2401.01234",
                "doi": "10.3390/s24113617",
                "code_official": None,
            },
            "loss": ["ntce_kd"],
            "volume": "24",
            "pages": "3617",
            "summary": "Short.",
            "notes": ("x " * 60).strip(),
        }
    )
    assert 'title: "NTCE-KD: Non-Target-Class-Enhanced Knowledge Distillation"\n' in text
    assert "tasks: [classification, detection]\n" in text
    assert '  arxiv: "2401.01234"\n' in text and "code_official" not in text
    assert 'loss: ntce_kd\nvolume: "24"\npages: "3617"\nsummary: >-\n  Short.\nnotes: >-\n' in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert record_yaml({"loss": ["kd", "dkd"]}).count("loss: [kd, dkd]\n") == 1


def test_record_yaml_marks_missing_required_fields(tmp_path):
    text = record_yaml(
        {
            "id": "zhao2022decoupled",
            "title": "Decoupled Knowledge Distillation",
            "authors": ["Zhao, Borui"],
            "year": 2022,
            "venue": "cvpr",
            "links": {},
            "notes": None,
        }
    )
    for field in ("category", "tasks", "loss", "summary"):
        assert f"\n{field}: null  # TODO: " in text
    assert "\n  paper: null  # TODO: " in text and "notes" not in text
    with pytest.raises(ValueError, match="unknown record field.*colour"):
        record_yaml({"colour": "red"})
    with pytest.raises(ValueError, match="links.homepage"):
        record_yaml({"links": {"homepage": "x"}})


# -- pieces -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "{IEEE/CVF} Conference on Computer Vision and Pattern Recognition, {CVPR} 2022, New "
            "Orleans, LA, USA, June 18-24, 2022",
            "cvpr",
        ),
        (
            "Proceedings of the IEEE/CVF Conference on computer vision and pattern recognition",
            "cvpr",
        ),
        ("Proceedings of the IEEE conference on computer vision and pattern recognition", "cvpr"),
        ("2021 {IEEE/CVF} International Conference on Computer Vision, {ICCV} 2021", "iccv"),
        ("{IEEE/CVF} International Conference on Computer Vision Workshops, {ICCVW} 2021", "iccvw"),
        (
            "Proceedings of the IEEE/CVF International Conference on Computer Vision Workshops",
            "iccvw",
        ),
        ("Computer Vision - {ECCV} 2022 - 17th European Conference, Tel Aviv, Israel", "eccv"),
        (
            "Advances in Neural Information Processing Systems 35: Annual Conference on Neural "
            "Information Processing Systems 2022, NeurIPS 2022",
            "neurips",
        ),
        ("NIPS", "neurips"),
        ("The Tenth International Conference on Learning Representations, {ICLR} 2022", "iclr"),
        ("Thirty-Fifth {AAAI} Conference on Artificial Intelligence, {AAAI} 2021", "aaai"),
        ("Proceedings of the AAAI Conference on Artificial Intelligence", "aaai"),
        ("{MM} '21: {ACM} Multimedia Conference, Virtual Event, China", "acmmm"),
        (
            "Proceedings of the 23rd {ACM} {SIGKDD} International Conference on "
            "Knowledge Discovery and Data Mining",
            "kdd",
        ),
        (
            "{IEEE} International Conference on Acoustics, Speech and Signal Processing, "
            "{ICASSP} 2023",
            "icassp",
        ),
        ("IEEE Winter Conference on Applications of Computer Vision (WACV)", "wacv"),
        ("IEEE Trans. Pattern Anal. Mach. Intell.", "tpami"),
        ("IEEE Transactions on Pattern Analysis and Machine Intelligence", "tpami"),
        ("{IEEE} Trans. Image Process.", "tip"),
        ("Knowl. Based Syst.", "kbs"),
        ("Knowledge-Based Systems", "kbs"),
        ("Sensors", "sensors"),
        ("CoRR", "arxiv"),
        ("arXiv preprint arXiv:1503.02531", "arxiv"),
        # Not in venues.yaml, or a workshop of a main conference: no match.
        (
            "{IEEE/CVF} Conference on Computer Vision and Pattern Recognition Workshops, "
            "{CVPRW} 2022",
            None,
        ),
        (
            "Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition "
            "(CVPR) Workshops",
            None,
        ),
        ("Asian Conference on Computer Vision", None),
        ("IEEE Sensors Journal", None),
        ("Pattern Recognition", None),
    ],
)
def test_match_venue(venues, text, key):
    assert match_venue(text, venues) == key


def test_authors_and_latex():
    assert authors(
        r"Borui Zhao and van der Maaten, Laurens and M{\"u}ller, J{\"o}rg and "
        r"Jos\'{e} Garc{\'\i}a and Jian Sun 0001 and Samira Ebrahimi Kahou"
    ) == (
        [
            "Zhao, Borui",
            "van der Maaten, Laurens",
            "Müller, Jörg",
            "García, José",
            "Sun, Jian",
            "Kahou, Samira Ebrahimi",
        ],
        False,
    )
    # a partial list (what export writes when unconfirmed.authors calls it incomplete)
    assert authors("A. Author and others") == (["Author, A."], True)
    assert authors("") == ([], False)
    with pytest.raises(ValueError, match="only last"):
        authors("A. Author and others and B. Other")
    assert (
        latex_to_text(r"{\c{C}}elik \& Dvo{\v{r}}{\'a}k: {KD} for 100\% of {CNN}s")
        == "Çelik & Dvořák: KD for 100% of CNNs"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"eprint": "1503.02531", "archiveprefix": "arXiv", "primaryclass": "stat.ML"},
        {"eprint": "1503.02531v2", "eprinttype": "arxiv"},
        {"journal": "CoRR", "volume": "abs/1503.02531"},
        {"journal": "arXiv preprint arXiv:1503.02531"},
        {"url": "http://arxiv.org/abs/1503.02531v1"},
        {"url": "https://arxiv.org/pdf/1503.02531.pdf"},
        {"doi": "10.48550/arXiv.1503.02531"},
    ],
)
def test_arxiv_id(fields):
    assert arxiv_id(fields) == "1503.02531"


# -- the command --------------------------------------------------------------------------------


def test_dblp_entry_to_record(tmp_path, empty_dir, capsys):
    path = bib_file(tmp_path, DBLP)
    assert main(["import", "bibtex", path, "--papers", str(empty_dir), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert captured.out == DBLP_YAML
    assert captured.err == (
        "zhao2022decoupled: dry run, nothing written; still to fill in: category, tasks, loss, "
        "summary (the TODO lines), in the record once written\n"
    )
    assert sorted(p.name for p in empty_dir.iterdir()) == [
        "categories.yaml",
        "tasks.yaml",
        "venues.yaml",
    ]

    assert main(["import", "bibtex", path, "--papers", str(empty_dir)]) == 0
    assert "still to fill in: category, tasks, loss, summary" in capsys.readouterr().err
    assert (empty_dir / "zhao2022decoupled.yaml").read_text(encoding="utf-8") == DBLP_YAML
    # The TODO fields fail validation, each at its line, until the contributor fills them in.
    with pytest.raises(CatalogueError) as exc:
        load(empty_dir)
    failing = {(p.field, p.line) for p in exc.value.problems}
    lines = DBLP_YAML.splitlines()
    assert failing == {
        (f, next(i for i, line in enumerate(lines, 1) if line.startswith(f"{f}:")))
        for f in ("category", "tasks", "loss", "summary")
    }


def test_flags_make_a_valid_record(tmp_path, empty_dir, capsys):
    path = bib_file(tmp_path, DBLP)
    assert (
        main(
            [
                "import",
                "bibtex",
                path,
                "--papers",
                str(empty_dir),
                "--category",
                "logit",
                "--task",
                "classification",
                "--task",
                "detection",
                "--loss",
                "dkd",
                "--summary",
                "The KD loss is split into  target and non-target terms.",
            ]
        )
        == 0
    )
    assert main(["validate", "--papers", str(empty_dir)]) == 0
    paper = load(empty_dir).papers[0]
    assert paper.loss == ["dkd"] and list(paper.tasks) == [
        "classification",
        "detection",
    ]
    assert paper.summary == "The KD loss is split into target and non-target terms."


def test_scholar_style_accents_and_journal(tmp_path, empty_dir, capsys):
    path = bib_file(tmp_path, SCHOLAR)
    assert main(["import", "bibtex", path, "--papers", str(empty_dir), "--dry-run"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["id"] == "muller2020uber"
    assert data["title"] == "Über KD: Accents and Family, Given Names"  # Scholar's sentence case
    assert data["authors"] == [
        "Müller, Jürgen",
        "García-López, José",
        "van Beethoven, Ludwig",
        "Sun, Jian",
    ]
    assert (data["venue"], data["volume"], data["number"], data["pages"]) == (
        "tpami",
        "42",
        "11",
        "1--10",
    )
    assert data["links"] == {"paper": None}  # no url, doi or arXiv id: left for the contributor


def test_unknown_venue_is_a_clear_error_and_nothing_is_written(tmp_path, empty_dir, capsys):
    text = DBLP + DBLP.replace("DBLP:conf/cvpr/ZhaoCSQL22", "other").replace(
        "Decoupled", "Coupled"
    ).replace("{CVPR} 2022", "{CVPR} 2022 Workshops").replace(
        "10.1109/CVPR52688.2022.01165", "10.1109/CVPRW.2022.1"
    )
    assert main(["import", "bibtex", bib_file(tmp_path, text), "--papers", str(empty_dir)]) == 1
    err = capsys.readouterr().err
    assert "entry 'other': unknown venue '" in err and "add it to venues.yaml" in err
    assert "DBLP:conf" not in err and "nothing written" in err
    assert not list(empty_dir.glob("zhao*"))


def test_never_overwrites_and_finds_duplicates(tmp_path, catalogue_dir, capsys):
    record = catalogue_dir / "hinton2015distilling.yaml"
    before = record.read_text(encoding="utf-8")
    arxiv = r"""@misc{hinton2015distilling, title={Distilling the Knowledge in a Neural Network},
      author={Geoffrey Hinton and Oriol Vinyals and Jeff Dean}, year={2015},
      eprint={1503.02531}, archivePrefix={arXiv}, primaryClass={stat.ML}}"""
    assert (
        main(["import", "bibtex", bib_file(tmp_path, arxiv), "--papers", str(catalogue_dir)]) == 1
    )
    err = capsys.readouterr().err
    # The same paper is named as such: no "save it as hinton2015distillingb.yaml" proposal.
    assert "already in the catalogue as " in err
    assert "hinton2015distilling.yaml (same arXiv id)" in err
    assert "hinton2015distillingb" not in err and "already exists" not in err
    assert record.read_text(encoding="utf-8") == before
    # Same DOI (a DBLP entry of a catalogued paper) and same title: the same paper too.
    record.write_text(before.replace("links:\n", "links:\n  doi: 10.1/X\n"), encoding="utf-8")
    dblp = arxiv.replace("eprint={1503.02531}, archivePrefix={arXiv}, ", "doi={10.1/x}, ")
    args = ["--papers", str(catalogue_dir), "--venue", "arxiv"]
    assert main(["import", "bibtex", bib_file(tmp_path, dblp), *args]) == 1
    err = capsys.readouterr().err
    assert "hinton2015distilling.yaml (same DOI)" in err and "hinton2015distillingb" not in err
    titled = dblp.replace("doi={10.1/x}, ", "")  # the title alone
    assert main(["import", "bibtex", bib_file(tmp_path, titled), *args]) == 1
    assert "hinton2015distilling.yaml (same title)" in capsys.readouterr().err
    record.write_text(before, encoding="utf-8")
    # Another paper whose key is taken: the file is not overwritten, a suffix is proposed.
    other = r"""@misc{other, title={Distilling Dark Knowledge}, author={Geoffrey Hinton},
      year={2015}}"""
    args = ["import", "bibtex", bib_file(tmp_path, other), "--papers", str(catalogue_dir)]
    assert main([*args, "--venue", "arxiv"]) == 1
    err = capsys.readouterr().err
    assert "hinton2015distilling.yaml already exists and is not overwritten" in err
    assert "hinton2015distillingb.yaml" in err
    # The same paper under another first word of the title (a renamed version): same arXiv id.
    renamed = arxiv.replace("Distilling the Knowledge", "Knowledge Distilling")
    assert (
        main(["import", "bibtex", bib_file(tmp_path, renamed), "--papers", str(catalogue_dir)]) == 1
    )
    err = capsys.readouterr().err
    assert "already in the catalogue as " in err and "(same arXiv id)" in err
    assert err.split("catalogue as ")[1].split()[0].endswith("/hinton2015distilling.yaml")


def test_flag_errors(tmp_path, empty_dir, capsys):
    path = bib_file(tmp_path, DBLP + SCHOLAR)
    assert main(["import", "bibtex", path, "--papers", str(empty_dir), "--summary", "One."]) == 2
    assert "--summary describe(s) one paper" in capsys.readouterr().err
    assert main(["import", "bibtex", path, "--papers", str(empty_dir), "--venue", "cvpr"]) == 2
    assert "--venue describe(s) one paper" in capsys.readouterr().err
    assert main(["import", "bibtex", path, "--papers", str(empty_dir), "--venue", "nope"]) == 2
    assert "--venue nope: not a key of venues.yaml" in capsys.readouterr().err
    assert main(["import", "bibtex", path, "--papers", str(empty_dir), "--loss", "nope"]) == 2
    assert "no loss nope" in capsys.readouterr().err
    assert (
        main(["import", "bibtex", str(tmp_path / "missing.bib"), "--papers", str(empty_dir)]) == 2
    )
    assert (
        main(["import", "bibtex", bib_file(tmp_path, "% nothing\n"), "--papers", str(empty_dir)])
        == 1
    )
    assert "no BibTeX entry found" in capsys.readouterr().err
    assert sorted(p.name for p in empty_dir.iterdir()) == [
        "categories.yaml",
        "tasks.yaml",
        "venues.yaml",
    ]


def test_import_takes_the_record_flags_of_new(tmp_path, empty_dir, capsys):
    from kdsurvey.cli import parser

    def options(*words):
        sub = parser()._subparsers._group_actions[0].choices[words[0]]
        if len(words) > 1:
            sub = sub._subparsers._group_actions[0].choices[words[1]]
        return {(opt, a.dest, a.help, a.metavar) for a in sub._actions for opt in a.option_strings}

    shared = {"--venue", "--paper", "--code", "--official", "--unofficial"}
    assert {o for o in options("new") if o[0] in shared} == {
        o for o in options("import", "bibtex") if o[0] in shared
    } and len({o for o in options("new") if o[0] in shared}) == 5

    path = bib_file(tmp_path, DBLP)
    flags = ["--venue", "iccv", "--paper", "https://openaccess.thecvf.com/x.html"]
    flags += ["--code", "https://github.com/megvii-research/mdistiller", "--official"]
    assert main(["import", "bibtex", path, "--papers", str(empty_dir), "--dry-run", *flags]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["venue"] == "iccv"
    assert data["links"] == {
        "paper": "https://openaccess.thecvf.com/x.html",
        "doi": "10.1109/CVPR52688.2022.01165",
        "code": "https://github.com/megvii-research/mdistiller",
        "code_official": True,
    }


def test_several_entries_and_stdin(tmp_path, empty_dir, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(DBLP + SCHOLAR))
    assert main(["import", "bibtex", "-", "--papers", str(empty_dir), "--dry-run"]) == 0
    docs = capsys.readouterr().out.split("---\n")
    assert [yaml.safe_load(d)["id"] for d in docs] == ["zhao2022decoupled", "muller2020uber"]


# -- export -> import round trip ----------------------------------------------------------------


@pytest.mark.parametrize("ascii", [False, True], ids=["utf8", "ascii"])
@pytest.mark.parametrize("source", [PAPERS, FIXTURES], ids=["real", "tricky"])
def test_export_then_import_gives_the_records_back(empty_dir, source, ascii):
    catalogue = load(source, check_losses=False)
    shutil.copy(source / "venues.yaml", empty_dir / "venues.yaml")
    text = citations.bibtex(catalogue, ascii=ascii)
    records = {
        r.fields["id"]: r.fields
        for r in import_bibtex(text, empty_dir, catalogue.venues, Options())
    }
    assert sorted(records) == sorted(p.key for p in catalogue.papers)
    for paper in catalogue.papers:
        got = records[paper.key]
        # import writes titles in Title Case (a record in sentence case comes back re-cased)
        assert got["title"] == title_case(paper.title.replace("{", "").replace("}", "")), paper.id
        assert got["authors"] == paper.authors, paper.id
        # a partial or empty list comes back with a sentence saying so, never an invented name
        assert ("authors" in got.get("unconfirmed", {})) == ("authors" in paper.unconfirmed)
        assert yaml.safe_load(record_yaml(got))["authors"] == paper.authors, paper.id
        assert (got["year"], got["venue"]) == (paper.year, paper.venue), paper.id
        for name in ("volume", "number", "pages"):
            assert got.get(name) == getattr(paper, name), (paper.id, name)
        links = got["links"]
        assert links["paper"] == str(paper.links.paper), paper.id
        assert links["doi"] == paper.links.doi, paper.id
        if paper.venue == "arxiv":
            assert links["arxiv"] == paper.links.arxiv, paper.id


def test_import_failure_lists_every_problem(empty_dir, venues):
    bad = (
        "@article{a, title={T}, year={20x}}\n@inproceedings{b, author={A B}, title={T}, "
        "booktitle={Nowhere Conference}, year={2020}}\n@misc{c, author={A B}, year={2020}, "
        'title={T}}\n@article{m{\\"u}ller, title={T}}\n@misc{c, title={T}}\n'
    )
    with pytest.raises(ImportFailure) as exc:
        import_bibtex(bad, empty_dir, venues, Options(), source="x.bib")
    text = str(exc.value)
    # no author field is no problem (the record says so in unconfirmed.authors); no year is
    assert "entry 'a': no year (or not a number: '20x')" in text
    assert "entry 'b': unknown venue 'Nowhere Conference'" in text
    assert "entry 'c': no booktitle or journal, and no arXiv id" in text
    assert "x.bib:4: cannot read '@article{m{': Expected comma after entry key" in text
    assert "x.bib:5: cannot read '@misc{c, title={T}}': Duplicate entry key 'c'" in text


def test_a_venue_alias_is_one_line_of_data(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    for name in ("venues.yaml", "categories.yaml", "tasks.yaml"):
        shutil.copy(PAPERS / name, folder / name)
    spelling = "Proc. Intl. Conf. on Learning Represent."
    assert match_venue(spelling, load(folder, check_losses=False).venues) is None
    text = (folder / "venues.yaml").read_text(encoding="utf-8")
    at = text.index("  aliases:\n", text.index("\niclr:")) + len("  aliases:\n")
    text = text[:at] + f"    - {spelling}\n" + text[at:]
    (folder / "venues.yaml").write_text(text, encoding="utf-8")
    assert match_venue(spelling, load(folder, check_losses=False).venues) == "iclr"


def test_partial_and_missing_author_lists_import_as_valid_records(tmp_path, empty_dir):
    """What ``export bibtex`` writes for incomplete author lists imports back: the known names
    and an ``unconfirmed.authors`` sentence, never a made-up name; the records validate."""
    entries = (
        "@inproceedings{partial, author={Tao Liu and others}, title={Rethinking Raw Features}, "
        "booktitle={IEEE/CVF Winter Conference on Applications of Computer Vision}, year={2024}, url={https://example.org/a}}",
        "@article{anon, title={Local structure consistency}, journal={Applied Intelligence}, "
        "year={2023}, key={Local structure consistency}, note={Authors unknown}, url={https://example.org/b}}",
    )
    args = ["--category", "feature", "--task", "segmentation", "--loss", "kd", "--summary", "S."]
    for i, text in enumerate(entries):
        path = bib_file(tmp_path, text, f"in{i}.bib")
        assert main(["import", "bibtex", path, "--papers", str(empty_dir), *args]) == 0
    records = {p.id: p for p in load(empty_dir).papers}
    assert sorted(records) == ["liu2024rethinking", "unknown2023local"]
    partial, anon = records["liu2024rethinking"], records["unknown2023local"]
    assert partial.authors == ["Liu, Tao"] and "incomplete" in partial.unconfirmed["authors"]
    assert anon.authors == [] and "incomplete" in anon.unconfirmed["authors"]
    written = (empty_dir / "unknown2023local.yaml").read_text(encoding="utf-8")
    assert "authors: []\n" in written and "TODO" not in written
    # and a complete list gets no unconfirmed mapping at all (no empty "unconfirmed: {}")
    assert "unconfirmed" not in record_yaml({"id": "a2020b", "unconfirmed": {}})


SCHOLAR_CASE = r"""
@inproceedings{hospedales2021meta,
  title={Meta-learning in neural networks: a survey of distillation},
  author={Hospedales, Timothy M and Antoniou, A and Storkey, Amos},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  year={2021}
}
"""


def test_import_tidies_what_scholar_gets_wrong_and_says_what_it_cannot(
    tmp_path, catalogue_dir, capsys
):
    path = bib_file(tmp_path, SCHOLAR_CASE)
    args = ["import", "bibtex", path, "--papers", str(catalogue_dir), "--category", "logit"]
    args += ["--task", "classification", "--loss", "kd", "--summary", "A summary."]
    args += ["--paper", "https://openaccess.thecvf.com/content/CVPR2021/html/x.html"]
    assert main(args) == 0
    err = capsys.readouterr().err
    record = yaml.safe_load((catalogue_dir / "hospedales2021meta.yaml").read_text())
    assert record["title"] == "Meta-Learning in Neural Networks: A Survey of Distillation"
    assert record["authors"] == ["Hospedales, Timothy M.", "Antoniou, A.", "Storkey, Amos"]
    assert "hospedales2021meta: title: written in Title Case" in err
    assert "authors[0]: 'Timothy M' written 'Timothy M.'" in err
    assert "authors[1]: 'Antoniou, A.' has only initials: write the given name in full" in err
    # what was tidied draws no warning from check metadata; what could not be, still does
    assert main(["check", "metadata", "--papers", str(catalogue_dir)]) == 0
    out = capsys.readouterr().out
    mine = [line for line in out.splitlines() if "hospedales2021meta.yaml" in line]
    assert not [line for line in mine if "casing" in line or "without a period" in line], mine
    assert any("'A.' is only initials" in line for line in mine), mine
