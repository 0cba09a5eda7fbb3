"""Reported results: vocabulary, validation, ranking, gains, spreads, pages, README and export."""

from __future__ import annotations

import csv
import io
import json
import shutil
from decimal import Decimal

import pytest
from conftest import PAPERS

from kdsurvey.cli import main
from kdsurvey.exporters import leaderboard, readme, results_export, site
from kdsurvey.records.catalogue import CatalogueError, load
from kdsurvey.records.results import architecture_key

DKD = """\
# yaml-language-server: $schema=schema.json
id: zhao2022decoupled
title: Decoupled Knowledge Distillation
authors: ["Zhao, Borui"]
year: 2022
venue: cvpr
category: logit
tasks: [classification]
links:
  paper: https://example.org/dkd
loss: dkd
summary: Target and non-target parts of KD, reweighted.
"""


def result(
    teacher="resnet32x4",
    student="resnet8x4",
    value="76.32",
    method="DKD",
    role="proposed",
    baseline=None,
    benchmark="cifar100",
    metric="top1",
    split=None,
    note=None,
    loss=None,
):
    lines = [
        f"  - benchmark: {benchmark}",
        f"    teacher: {teacher}",
        f"    student: {student}",
        f"    metric: {metric}",
        f'    value: "{value}"' if isinstance(value, str) else f"    value: {value}",
        f"    method: {method}",
        f"    role: {role}",
        "    source: Table 2",
    ]
    if split:
        lines.append(f"    split: {split}")
    if baseline:
        lines.append(f"    baseline: {baseline}")
    if note:
        lines.append(f"    note: {note}")
    if loss:
        lines.append(f"    loss: {loss}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def papers(catalogue_dir):
    shutil.copy(PAPERS / "benchmarks.yaml", catalogue_dir / "benchmarks.yaml")
    return catalogue_dir


def write(papers, record_id, text, *results):
    body = text + ("results:\n" + "".join(results) if results else "")
    (papers / f"{record_id}.yaml").write_text(body, encoding="utf-8")


def problems(papers):
    with pytest.raises(CatalogueError) as info:
        load(papers)
    return [str(p) for p in info.value.problems]


# -- vocabulary and normalisation ---------------------------------------------------------------


def test_architecture_key_and_aliases(papers):
    assert architecture_key("WRN_40_2") == architecture_key("wrn-40-2") == "wrn402"
    assert architecture_key("ResNet-32x4") == "resnet32x4"
    assert architecture_key("DeepLabV3+-ResNet101") != architecture_key("deeplabv3-resnet101")
    write(
        papers,
        "zhao2022decoupled",
        DKD,
        result("ResNet-32x4", "resnet_8x4"),
        result("wrn_40_2", "MobileNet-V2"),
        result("R34", "R18", benchmark="imagenet"),
    )
    c = load(papers)
    pairs = [(r.teacher, r.student) for r in c.papers[-1].results]
    assert pairs == [
        ("resnet32x4", "resnet8x4"),
        ("wrn-40-2", "mobilenetv2"),
        ("resnet34", "resnet18"),
    ]
    vocab = c.benchmarks
    assert vocab.architecture("MBV2") == "mobilenetv2" and vocab.architecture("unknown") is None


def test_real_vocabulary_covers_the_classic_pairs():
    c = load(PAPERS)
    cifar = c.benchmarks.benchmarks["cifar100"]
    assert ("resnet32x4", "resnet8x4") in [tuple(p) for p in cifar.pairs] and len(cifar.pairs) == 13
    assert [tuple(p) for p in c.benchmarks.benchmarks["imagenet"].pairs] == [
        ("resnet34", "resnet18"),
        ("resnet50", "mobilenetv1"),
    ]
    vocab = c.benchmarks
    for name in ("GPT-2 XL", "GPT-2 XL 1.5B", "GPT2-XL", "gpt2-xl", "GPT-2 1.5B"):
        assert vocab.architecture(name) == "gpt2-xl", name
    assert (
        vocab.architecture("GPT-2 120M") == "gpt2-base"
        and vocab.architecture("OPT 13B") == "opt-13b"
    )
    for key in ("dolly", "selfinst", "vicuna", "sni", "unni"):  # the MiniLLM protocol, one per set
        bench = vocab.benchmarks[key]
        assert list(bench.metrics) == ["rouge_l"] and bench.higher_is_better("rouge_l")
        assert (
            bench.name.startswith("Instruction following (") and bench.task == "language-modeling"
        )
        assert ("gpt2-xl", "gpt2-base") in [tuple(p) for p in bench.pairs]


# -- validation: every rule, located ----------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (result(benchmark="mnist"), "results[0].benchmark", "unknown benchmark 'mnist'"),
        (result(metric="miou"), "results[0].metric", "cifar100 has no metric 'miou'"),
        (result(teacher="unknown"), "results[0].teacher", "unknown architecture 'unknown'"),
        (result(student="resnet9000"), "results[0].student", "unknown architecture"),
        (result(value="101.5"), "results[0].value", "outside the range"),
        (result(value="72.7%"), "results[0].value", "not a decimal number"),
        (result(value=76.3), "results[0].value", "quoted as a string"),
        (result(role="baseline"), "results[0].role", "must name it in `baseline:`"),
        (result(baseline="kd"), "results[0].baseline", "only a result with role baseline"),
        (result(split="train"), "results[0].split", "cifar100 has no split 'train'"),
        (result(role="winner"), "results[0].role", "proposed"),
        (result(method="DKD+Ours"), "results[0].method", "says 'Ours': name the method"),
        (result(method="Proposed"), "results[0].method", "says 'Proposed'"),
        (result(method="our reproduced"), "results[0].method", "says 'our'"),
        (result(method="resnet18"), "results[0].method", "'resnet18' is an architecture"),
        (result(loss="crd"), "results[0].loss", "'crd' is not a loss of this record (loss: dkd)"),
        (
            result(role="baseline", baseline="kd", method="KD2", loss="dkd"),
            "results[0].loss",
            "only a result with role proposed names its loss",
        ),
    ],
)
def test_each_rule_is_reported_at_its_line(papers, row, field, words):
    write(
        papers,
        "zhao2022decoupled",
        DKD,
        result(value="70.00", method="KD", role="baseline", baseline="kd"),
        row,
    )
    found = problems(papers)
    field = field.replace("results[0]", "results[1]")
    lines = (papers / "zhao2022decoupled.yaml").read_text().split("\n")
    key = field.split(".")[-1] + ":"
    line = max(i for i, ln in enumerate(lines, 1) if ln.strip().lstrip("- ").startswith(key))
    assert any(f"zhao2022decoupled.yaml:{line}: {field}: " in p and words in p for p in found), (
        line,
        found,
    )


def test_duplicates_and_splits(papers):
    write(
        papers,
        "zhao2022decoupled",
        DKD,
        result(
            benchmark="cityscapes",
            teacher="pspnet-resnet101",
            student="pspnet-resnet18",
            metric="miou",
            value="74.0",
        ),
        result(
            benchmark="cityscapes",
            teacher="PSPNet-R101",
            student="pspnet-resnet18",
            metric="miou",
            value="73.1",
        ),
    )
    found = problems(papers)
    assert any(
        "results[1]: same benchmark, teacher, student, method, metric and split as results[0]" in p
        for p in found
    )
    write(
        papers,
        "zhao2022decoupled",
        DKD,
        result(
            benchmark="cityscapes",
            teacher="pspnet-resnet101",
            student="pspnet-resnet18",
            metric="miou",
            value="74.0",
        ),
        result(
            benchmark="cityscapes",
            teacher="pspnet-resnet101",
            student="pspnet-resnet18",
            metric="miou",
            value="73.1",
            split="test",
        ),
    )
    assert len(load(papers).papers[-1].results) == 2


def test_every_problem_at_once_and_no_benchmarks_file(catalogue_dir):
    write(catalogue_dir, "zhao2022decoupled", DKD, result(), result(method="X"))
    found = problems(catalogue_dir)
    assert len([p for p in found if "unknown benchmark" in p]) == 2
    assert "none: the catalogue has no benchmarks.yaml" in found[0]


# -- ranking, direction, gains, spreads -------------------------------------------------------


def board_catalogue(papers, metric="top1", values=("76.30", "77.10", "76.3", "75.00")):
    ids = ["alpha2020ranked", "beta2021ranked", "gamma2019ranked", "delta2022ranked"]
    years = [2020, 2021, 2019, 2022]
    kd = ["73.33", "74.00", "73.00", None]
    for rid, year, value, k in zip(ids, years, values, kd, strict=True):
        text = DKD.replace("zhao2022decoupled", rid).replace(
            "Zhao, Borui", f"{rid[:-10].title()}, A"
        )
        text = text.replace("year: 2022", f"year: {year}")
        text = text.replace(
            "Decoupled Knowledge Distillation", f"Ranked Distillation {rid[:-10].title()}"
        )
        rows = [result(value=value, method=rid[:-10].upper(), metric=metric)]
        if k:
            rows.append(result(value=k, method="KD", role="baseline", baseline="kd", metric=metric))
        rows.append(
            result(
                value="72.50", method="Student", role="baseline", baseline="student", metric=metric
            )
        )
        write(papers, rid, text, *rows)
    return load(papers)


def test_ranking_order_ties_and_gain(papers):
    c = board_catalogue(papers)
    board = leaderboard.boards(c)["cifar100"][0]
    got = [(e.rank, e.paper.id, e.result.value, e.gain) for e in board.entries]
    assert got == [
        (1, "beta2021ranked", "77.10", Decimal("3.10")),
        (2, "gamma2019ranked", "76.3", Decimal("3.30")),  # 76.3 == 76.30: a tie, oldest first
        (2, "alpha2020ranked", "76.30", Decimal("2.97")),
        (4, "delta2022ranked", "75.00", None),  # reports no KD of its own
    ]
    by_id = {p.id: p for p in c.papers}
    alpha, gamma = by_id["alpha2020ranked"], by_id["gamma2019ranked"]
    bench = c.benchmarks.benchmarks["cifar100"]

    def entry(p, value):
        return leaderboard.Entry(
            p, {"top1": leaderboard.cell(p.results[0].model_copy(update={"value": value}), bench)}
        )

    tie = leaderboard.rank([entry(alpha, "76.30"), entry(gamma, "76.3")], True, "top1")
    assert [e.rank for e in tie] == [1, 1] and [e.paper.year for e in tie] == [2019, 2020]
    assert (
        leaderboard.signed(Decimal("2.99")) == "+2.99"
        and leaderboard.signed(Decimal("-0.4")) == "−0.4"
    )
    kd = next(s for s in board.spreads if s.baseline == "kd")
    assert (kd.low, kd.high, kd.count) == (Decimal("73.00"), Decimal("74.00"), 3)
    assert [p.id for p in kd.papers] == ["gamma2019ranked", "alpha2020ranked", "beta2021ranked"]
    student = next(s for s in board.spreads if s.baseline == "student")
    assert student.count == 4 and student.low == student.high


def test_errors_are_shown_as_accuracy_with_the_printed_form_in_the_note(papers):
    c = board_catalogue(papers, metric="top1_err", values=("23.5", "22.0", "24.1", "21.9"))
    board = leaderboard.boards(c)["cifar100"][0]
    assert board.metrics == ["top1"] and board.higher
    assert [e.cells["top1"].text for e in board.entries] == ["78.1", "78.0", "76.5", "75.9"]
    assert [e.result.value for e in board.entries] == ["21.9", "22.0", "23.5", "24.1"]  # printed
    beta = next(e for e in board.entries if e.paper.id == "beta2021ranked")
    assert beta.gain == Decimal("52.00")  # KD error 74.00 (accuracy 26.00) -> 78.0: +52.00
    assert "printed as Top-1 error 22.0%" in beta.notes
    kd = next(s for s in board.spreads if s.baseline == "kd")
    assert (kd.low, kd.high) == (Decimal("26.00"), Decimal("27.00"))
    assert leaderboard.gain(Decimal("20"), Decimal("25"), higher=False) == Decimal("5")


def test_one_board_per_pair_with_top1_and_top5_side_by_side(papers):
    """A paper printing top-1 accuracy and top-5 error, another only top-5: one board, two
    columns, the first ranked by top-1, the second after it without a rank."""
    text = DKD.replace("zhao2022decoupled", "alpha2020ranked").replace("Zhao, Borui", "Alpha, A")
    text = text.replace("Decoupled Knowledge Distillation", "Ranked Distillation Alpha")
    write(
        papers,
        "alpha2020ranked",
        text.replace("year: 2022", "year: 2020"),
        result(value="76.32", method="ALPHA"),
        result(value="6.50", method="ALPHA", metric="top5_err"),
        result(value="93.0", method="BETA", metric="top5"),
    )
    (board,) = leaderboard.boards(load(papers))["cifar100"]
    assert board.metrics == ["top1", "top5"]
    first, second = board.entries
    assert (first.rank, first.method, [c.text for c in first.cells.values()]) == (
        1,
        "ALPHA",
        ["76.32", "93.50"],
    )
    assert first.notes == ["printed as Top-5 error 6.50%"]
    assert (second.rank, second.method, list(second.cells)) == (None, "BETA", ["top5"])
    page = site.render_pages(load(papers))["leaderboards/cifar100.md"]
    assert page.count("<table") == 1 and ">Top-1 (%)</th>" in page and ">Top-5 (%)</th>" in page


def test_nonstandard_results_are_ranked_apart_and_stay_out_of_the_spreads(papers):
    board_catalogue(papers)
    path = papers / "beta2021ranked.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "    method: BETA\n    role: proposed\n",
        "    method: BETA\n    role: proposed\n    nonstandard: a stronger teacher (80.70)\n",
    )
    text += "\n".join(
        result(value="80.70", method="Teacher*", role="baseline", baseline="teacher").splitlines()
        + ["    nonstandard: a stronger teacher"]
    )
    path.write_text(text + "\n", encoding="utf-8")
    c = load(papers)
    (board,) = leaderboard.boards(c)["cifar100"]
    assert [(e.rank, e.paper.id) for e in board.entries] == [
        (1, "gamma2019ranked"),
        (1, "alpha2020ranked"),
        (3, "delta2022ranked"),
    ]
    (apart,) = board.apart
    assert (apart.rank, apart.paper.id, apart.nonstandard) == (
        1,
        "beta2021ranked",
        "a stronger teacher (80.70)",
    )
    assert apart.gain is None  # its own KD ran with the standard teacher: no fair gain
    assert not any(s.baseline == "teacher" for s in board.spreads)
    page = site.render_pages(c)["leaderboards/cifar100.md"]
    assert "Ranked apart: 1 result" in page and "a stronger teacher (80.70)</span>" in page


# -- pages, README, export --------------------------------------------------------------------


def test_rendered_tables_match_the_data(papers):
    c = board_catalogue(papers)
    pages = site.render_pages(c)
    page = pages["leaderboards/cifar100.md"]
    body = page[page.index("<tbody>") : page.index("</tbody>")]
    rows = [r for r in body.split("\n") if r.startswith("<tr>")]
    board = leaderboard.boards(c)["cifar100"][0]
    assert len(rows) == len(board.entries)
    for row, e in zip(rows, board.entries, strict=True):
        assert row.startswith(f'<tr><td class="kd-rank" data-kd-value="{e.rank}">{e.rank}</td>')
        assert f'<a href="../../losses/dkd/">{e.method}</a>' in row  # the loss that produced it
        assert f'href="../../papers/{e.paper.id}/"' in row
        assert f">{e.result.value}</td>" in row and leaderboard.signed(e.gain) in row
    # numbers first: the table comes before the chart, one dot per ranked result (legend: one)
    assert page.index("<tbody>") < page.index("<svg")
    assert page.count('class="kd-board-dot"') == 4 + 1
    assert "| Top-1 (%) of the baselines, across papers |" in page
    assert "| 73.00 | 74.00 | 1.00 | 3 |" in page
    assert (
        "leaderboards/index.md" in pages
        and "[CIFAR-100](cifar100.md)" in pages["leaderboards/index.md"]
    )
    paper_page = pages["papers/beta2021ranked.md"]
    assert "## Reported results" in paper_page and ">77.10</td>" in paper_page
    text = readme.render(c)
    assert "### CIFAR-100: ResNet-32x4 → ResNet-8x4" in text
    assert "| 1 | BETA |" in text and "catalogue/leaderboards/cifar100/" in text


def test_no_results_still_builds_an_index(catalogue_dir):
    pages = site.render_pages(load(catalogue_dir))
    assert "No record reports results yet." in pages["leaderboards/index.md"]
    assert "## Reported results" not in readme.render(load(catalogue_dir))


def test_export_round_trips(papers, capsys):
    c = board_catalogue(papers)
    rows = results_export.rows(c)
    assert main(["export", "results", "--papers", str(papers)]) == 0
    back = json.loads(capsys.readouterr().out)
    assert [r["value"] for r in back] == [float(r["value"]) for r in rows]
    assert back == [{**r, "value": float(r["value"])} for r in rows]
    assert (
        main(
            [
                "export",
                "results",
                "--format",
                "csv",
                "--papers",
                str(papers),
                "--benchmark",
                "cifar100",
            ]
        )
        == 0
    )
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(p["paper"], Decimal(p["value"]), p["baseline"] or None) for p in parsed] == [
        (r["paper"], r["value"], r["baseline"]) for r in rows
    ]
    assert set(parsed[0]) == set(results_export.COLUMNS)
    assert main(["export", "results", "--papers", str(papers), "--paper", "beta2021ranked"]) == 0
    assert {r["paper"] for r in json.loads(capsys.readouterr().out)} == {"beta2021ranked"}
    assert main(["export", "results", "--papers", str(papers), "--benchmark", "mnist"]) == 2


def test_real_catalogue_results_are_normalised_and_exported():
    c = load(PAPERS)
    rows = results_export.rows(c)
    assert len(rows) > 1000
    names = set(c.benchmarks.architectures)
    assert all(r["teacher"] in names and r["student"] in names for r in rows)


def test_exports_keep_the_printed_precision(papers, capsys):
    c = board_catalogue(papers)
    zero = [r for r in results_export.rows(c) if str(r["value"]).endswith("0")]
    assert zero, "the board catalogue has a value whose last printed digit is a zero"
    assert main(["export", "results", "--papers", str(papers)]) == 0
    back = json.loads(capsys.readouterr().out)
    assert [r["value_text"] for r in back] == [str(r["value"]) for r in results_export.rows(c)]
    assert any(r["value_text"].endswith("0") and "." in r["value_text"] for r in back)
    assert main(["export", "results", "--papers", str(papers), "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [p["value"] for p in parsed] == [r["value_text"] for r in back]


def test_real_leaderboard_labels_name_methods_and_link_the_loss_that_produced_them():
    """No ranked label is a pronoun or an architecture; combined methods link their own loss."""
    from kdsurvey.records.results import PRONOUN_RE

    c = load(PAPERS)
    boards = [b for made in leaderboard.boards(c).values() for b in made]
    entries = [e for b in boards for e in b.entries + b.apart]
    assert len(entries) > 300
    bad = [
        (e.paper.id, e.method)
        for e in entries
        if PRONOUN_RE.search(e.method) or c.benchmarks.architecture(e.method)
    ]
    assert not bad, bad
    losses = {(e.paper.id, e.method): e.loss for e in entries}
    assert losses[("sun2024logit", "LSKD (on DKD)")] == "lskd_dkd"
    assert losses[("sun2024logit", "LSKD (on KD)")] == "lskd"
    assert losses[("wei2024scaled", "SD-DKD")] == "sdd_dkd"
    assert losses[("zheng2024knowledge", "WTTM (on CRD)")] == "wttm"
    assert losses[("wei2024scaled", "SD-NKD")] is None  # no loss of the catalogue produced it
    for e in entries:  # a named loss is one of the record's
        assert e.loss is None or e.loss in e.paper.loss, (e.paper.id, e.method)
    page = site.render_pages(c)["leaderboards/cifar100.md"]
    assert '<a href="../../losses/lskd_dkd/">LSKD (on DKD)</a>' in page
    assert "Ours" not in page.split("<tbody>", 1)[1]


# -- language models: instruction following (the MiniLLM protocol) ----------------------------

LM = DKD.replace("tasks: [classification]", "tasks: [language-modeling]").replace(
    "loss: dkd", "loss: kd"
)


def lm_record(papers, rid, year, rows):
    name = rid[:-10]  # ids end in <year>ranked: author family name, year, first title word
    text = LM.replace("zhao2022decoupled", rid).replace("Zhao, Borui", f"{name.title()}, A")
    text = text.replace("year: 2022", f"year: {year}")
    text = text.replace("Decoupled Knowledge Distillation", f"Ranked Language Distillation {name}")
    write(papers, rid, text, *rows)


def if_result(value, method, baseline=None, teacher="gpt2-xl", student="gpt2-base", **kw):
    role = "baseline" if baseline else "proposed"
    return result(teacher, student, value, method, role, baseline, "dolly", "rouge_l", **kw)


def test_instruction_following_board_export_and_page(papers, capsys):
    lm_record(
        papers,
        "minillm2024ranked",
        2024,
        [
            if_result("27.6", "Teacher", "teacher", teacher="GPT-2 XL 1.5B"),
            if_result("22.8", "KD", "kd", student="GPT-2 120M"),
            if_result("24.6", "MiniLLM"),
        ],
    )
    lm_record(
        papers,
        "skewkl2025ranked",
        2025,
        [
            if_result("23.80", "KD", "kd"),
            if_result("26.10", "SkewKL", student="GPT2-120M"),
            result(value="79.00", method="SkewKL"),  # a CIFAR number: not a dolly row
        ],
    )
    c = load(papers)
    board = leaderboard.boards(c)["dolly"][0]
    assert (board.teacher, board.student, board.metric, board.split) == (
        "gpt2-xl",
        "gpt2-base",
        "rouge_l",
        "test",
    )
    got = [(e.rank, e.result.method, e.gain) for e in board.entries]
    assert got == [(1, "SkewKL", Decimal("2.30")), (2, "MiniLLM", Decimal("1.8"))]
    kd = next(s for s in board.spreads if s.baseline == "kd")
    assert (kd.low, kd.high, kd.count) == (Decimal("22.8"), Decimal("23.80"), 2)
    assert [s.baseline for s in board.spreads] == ["kd", "teacher"]

    assert main(["export", "results", "--papers", str(papers), "--benchmark", "dolly"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["benchmark"] for r in rows} == {"dolly"} and len(rows) == 5
    assert {(r["teacher"], r["student"]) for r in rows} == {("gpt2-xl", "gpt2-base")}
    assert sorted(r["value"] for r in rows if r["role"] == "proposed") == [24.6, 26.1]

    page = site.render_pages(c)["leaderboards/dolly.md"]
    assert "# Instruction following (DollyEval) leaderboard" in page
    assert "## GPT-2 XL (1.5B) → GPT-2 (120M) {" in page and ">ROUGE-L</th>" in page
    assert 'data-kd-value="2.30">+2.30</td>' in page and 'data-kd-value="1.8">+1.8</td>' in page
    assert "| 22.8 | 23.80 | 1.00 | 2 |" in page  # KD's spread across the two papers
    index = site.render_pages(c)["leaderboards/index.md"]
    assert (
        "[Instruction following (DollyEval)](dolly.md) | language-modeling | 5 | 2 | 1 |" in index
    )


def test_real_instruction_following_rows(capsys):
    assert main(["export", "results", "--benchmark", "dolly"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["benchmark"] for r in rows} == {"dolly"}
    minillm = {
        (r["student"], r["method"]): r["value"]
        for r in rows
        if r["paper"] == "gu2024minillm" and r["teacher"] == "gpt2-xl"
    }
    assert minillm[("gpt2-base", "MiniLLM")] == 24.6 and minillm[("gpt2-base", "KD")] == 22.8
    board = next(
        b for b in leaderboard.boards(load(PAPERS))["dolly"] if b.pair == ("gpt2-xl", "gpt2-base")
    )
    mine = next(e for e in board.entries if e.paper.id == "gu2024minillm")
    assert mine.gain == Decimal("1.8")  # MiniLLM 24.6 over its own KD 22.8 (Table 1)
    assert all(r["source"] for r in rows)
