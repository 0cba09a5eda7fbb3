"""The command line as CI and contributors meet it: exit codes, messages, --help, json."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import GOOD, ROOT, require

from kdsurvey.cli import main


def run(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "kdsurvey", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_validate_summary_line(catalogue_dir, capsys):
    assert main(["validate", "--papers", str(catalogue_dir)]) == 0
    assert capsys.readouterr().out == "1 papers, 3 categories, 0 errors\n"


def test_validate_json(catalogue_dir, capsys):
    assert main(["validate", "--papers", str(catalogue_dir), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "papers": 1,
        "categories": 3,
        "errors": [],
        "error_count": 0,
        "warnings": [],
        "warning_count": 0,
    }


def test_validate_reports_every_error_without_traceback(catalogue_dir):
    bad = GOOD.replace("year: 2015", "year: 3000").replace("venue: arxiv", "venue: x")
    (catalogue_dir / "hinton2015distilling.yaml").write_text(bad)
    (catalogue_dir / "empty2020x.yaml").write_text("")
    result = run("validate", "--papers", str(catalogue_dir))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert any(
        line.endswith(
            "hinton2015distilling.yaml:8: year: Input should be less than or equal to 2030"
        )
        for line in lines
    )
    assert any("hinton2015distilling.yaml:9: venue: unknown venue 'x'" in line for line in lines)
    assert any("empty2020x.yaml:1: file: is empty" in line for line in lines)
    assert lines[-1] == "4 error(s)"


def test_validate_json_errors(catalogue_dir, capsys):
    (catalogue_dir / "hinton2015distilling.yaml").write_text(GOOD.replace("year: 2015", "year: x"))
    assert main(["validate", "--papers", str(catalogue_dir), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["papers"], report["error_count"], report["warnings"]) == (1, 1, [])
    [error] = report["errors"]
    assert error["line"] == 8 and error["field"] == "year" and error["severity"] == "error"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["validate"],
        ["readme"],
        ["build"],
        ["schema"],
        ["losses"],
        ["losses", "verify"],
        ["losses", "list"],
        ["arena"],
        ["arena", "merge"],
    ],
)
def test_help_everywhere(command):
    result = run(*command, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: kdsurvey")


def test_bad_usage_exits_2():
    assert run("nonsense").returncode == 2


def test_schema_is_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Paper" and "links" in schema["properties"]
    assert schema["additionalProperties"] is False


def _parsers(parser, path=("kdsurvey",)):
    """Every parser of the command line with its path: kdsurvey, kdsurvey check links, ..."""
    import argparse

    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_option_with_a_default_says_it_in_its_help():
    import argparse

    from kdsurvey.cli import parser

    silent = []
    for path, sub in _parsers(parser()):
        for action in sub._actions:
            if not action.option_strings or action.default in (None, argparse.SUPPRESS):
                continue
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                continue
            if "default" not in (action.help or ""):
                silent.append(f"{path} {action.option_strings[-1]}")
    assert silent == []


def test_version_and_the_exit_code_table(capsys):
    from kdsurvey import __version__
    from kdsurvey.commands.common import EXIT_CODES

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"kdsurvey {__version__}\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "exit codes" in text and all(f"  {code} " in text for code, _ in EXIT_CODES)
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert all(f"| {code} |" in contributing for code, _ in EXIT_CODES)


# -- --device and the extras: one line and exit 2, never a traceback ------------------------------


def _device_commands() -> list[list[str]]:
    """The argv (after ``kdsurvey``) of every command that has a ``--device`` option."""
    from kdsurvey.cli import parser

    return [
        path.split()[1:]
        for path, sub in _parsers(parser())
        if any("--device" in a.option_strings for a in sub._actions)
    ]


def test_device_commands_are_found():
    assert ["arena"] in _device_commands() and ["losses", "verify"] in _device_commands()


@pytest.mark.parametrize("argv", _device_commands(), ids=" ".join)
def test_a_missing_device_is_one_line_and_exit_2(argv, monkeypatch, tmp_path, capsys):
    """Every --device option is checked before any work, whatever the machine has (the device
    count is injected: none of any kind)."""
    require("torch", "the losses extra")
    from kdsurvey.commands import common

    monkeypatch.setattr(common, "_device_count", lambda kind: 0)
    monkeypatch.chdir(tmp_path)  # the arena would write arena.json here
    assert main([*argv, "--device", "cuda"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and list(tmp_path.iterdir()) == []
    assert captured.err.splitlines() == [
        f"--device cuda: torch {sys.modules['torch'].__version__} sees no cuda device on this "
        "machine; use --device cpu"
    ]


def test_device_check_decisions():
    require("torch", "the losses extra")
    from kdsurvey.commands.common import Failure, check_device

    def two_gpus(kind):
        return {"cuda": 2}.get(kind, 0)

    for ok in (None, "cpu", "cuda", "cuda:1"):
        check_device(ok, two_gpus)
    for bad, says in (
        ("cuda:2", "sees 2 cuda device(s)"),
        ("mps", "sees no mps device"),
        ("gpu", "not a torch device"),
    ):
        with pytest.raises(Failure, match=re.escape(says)) as exc:
            check_device(bad, two_gpus)
        assert exc.value.code == 2 and str(exc.value).startswith(f"--device {bad}: ")


def test_this_machines_missing_cuda_device_is_refused(capsys):
    """The real device count: ``cuda:N`` with N = the machine's CUDA device count never exists
    (here, with a CPU build of torch, that is ``cuda:0``: no CUDA at all)."""
    torch = require("torch", "the losses extra")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert main(["losses", "verify", "--device", f"cuda:{n}"]) == 2
    have = f"{n} cuda device(s)" if n else "no cuda device"
    assert f"sees {have} on this machine" in capsys.readouterr().err


def test_a_missing_extra_names_its_install_line(monkeypatch, tmp_path, capsys):
    """The arena needs scikit-learn: the hint names the arena extra, not only torch's."""
    require("torch", "the losses extra")
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` fails as if missing
    out = tmp_path / "arena.json"
    argv = ["arena", "--losses", "kd", "--seeds", "1", "--epochs", "1", "--no-progress"]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "this command needs sklearn (the arena extra): pip install 'kdsurvey[arena]'"
    ]
    assert not out.exists()


def test_only_a_declared_extra_is_hinted():
    from argparse import Namespace

    from kdsurvey.commands.common import missing_extra

    torch_missing = ModuleNotFoundError("No module named 'torch'", name="torch")
    assert missing_extra(Namespace(extra="losses"), torch_missing) == (
        "this command needs torch (the losses extra): pip install 'kdsurvey[losses]'"
    )
    assert missing_extra(Namespace(extra=None), torch_missing) is None  # a catalogue command
    own = ModuleNotFoundError("No module named 'kdsurvey.nope'", name="kdsurvey.nope")
    assert missing_extra(Namespace(extra="losses"), own) is None  # our bug: show the traceback


# -- the exit code table, walked ---------------------------------------------------------------

TWO_ENTRIES = """\
@article{a2020first, title={First Paper on Distillation}, author={Doe, Jane}, year={2020},
  journal={arXiv preprint arXiv:2001.00001}}
@article{b2020second, title={Second Paper on Distillation}, author={Roe, Rick}, year={2020},
  journal={arXiv preprint arXiv:2001.00002}}
"""


def _offline_links(papers, tmp_path, monkeypatch):
    import socket

    from httpfake import FakeResolver

    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(socket.getaddrinfo))  # no name exists
    record = GOOD.replace(
        '  arxiv: "1503.02531"\n', '  arxiv: "1503.02531"\n  code: http://c.kd-offline.net/x\n'
    )
    (papers / "hinton2015distilling.yaml").write_text(record)
    api = "http://export.kd-offline.net/api/query"
    return ["check", "links", "--papers", str(papers), "--no-site", "-q", "--arxiv-api", api]


def _stale_readme(papers, tmp_path, monkeypatch):
    (tmp_path / "R.md").write_text("old\n")
    return ["readme", "--check", "--papers", str(papers), "-o", str(tmp_path / "R.md")]


def _bad_record(papers, tmp_path, monkeypatch):
    (papers / "hinton2015distilling.yaml").write_text(GOOD.replace("year: 2015", "year: 3000"))
    return ["validate", "--papers", str(papers)]


def _bad_revision(papers, tmp_path, monkeypatch):
    from conftest import git

    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "records")
    return ["check", "links", "--papers", str(papers), "--changed-since", "no-such-rev", "-q"]


def _flag_for_one_paper_on_two(papers, tmp_path, monkeypatch):
    (tmp_path / "two.bib").write_text(TWO_ENTRIES)
    url = "https://example.org/paper"
    return ["import", "bibtex", str(tmp_path / "two.bib"), "--papers", str(papers), "--paper", url]


def _interrupted(papers, tmp_path, monkeypatch):
    from kdsurvey.commands import validate

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(validate, "run", interrupt)
    return ["validate", "--papers", str(papers)]


OFFLINE_NEW = ["--offline", "--title", "Decoupled Knowledge Distillation", "--author", "Zhao, B"]
EXIT_CASES = [
    (0, "success", lambda p, t, m: ["validate", "--papers", str(p)]),
    (
        0,
        "a draft with TODO fields",
        lambda p, t, m: (
            ["new", "--arxiv", "2203.08679", *OFFLINE_NEW, "--year", "2022"]
            + ["--papers", str(p), "--dry-run"]
        ),
    ),
    (1, "a record with problems", _bad_record),
    (1, "a stale README", _stale_readme),
    (
        1,
        "a paper already catalogued",
        lambda p, t, m: ["new", "--arxiv", "1503.02531", "--papers", str(p)],
    ),
    (2, "an unknown option", lambda p, t, m: ["validate", "--no-such-option"]),
    (2, "a missing folder", lambda p, t, m: ["validate", "--papers", str(t / "nonexistent")]),
    (
        2,
        "a missing file",
        lambda p, t, m: ["import", "bibtex", str(t / "no.bib"), "--papers", str(p)],
    ),
    (
        2,
        "nothing matches the selection",
        lambda p, t, m: ["export", "bibtex", "--papers", str(p), "--ids", "nope"],
    ),
    (2, "a bad revision", _bad_revision),
    (2, "a flag for one paper on a file of two", _flag_for_one_paper_on_two),
    (3, "the network is down", _offline_links),
    (130, "interrupted", _interrupted),
]


@pytest.mark.parametrize(("code", "what", "setup"), EXIT_CASES, ids=[c[1] for c in EXIT_CASES])
def test_the_exit_code_table_holds(code, what, setup, catalogue_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    argv = setup(catalogue_dir, tmp_path, monkeypatch)
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        got = exc.code
    assert got == code, what


def test_the_walk_covers_every_code_of_the_table():
    from kdsurvey.commands.common import EXIT_CODES

    assert {code for code, _, _ in EXIT_CASES} == {code for code, _ in EXIT_CODES}


# -- GitHub annotations for a broken catalogue -------------------------------------------------


ANNOTATED = [
    (["validate"], "text"),
    (["validate", "--format", "json"], "json"),
    (["check", "metadata"], "text"),
    (["check", "metadata", "--format", "json"], "json"),
    (["readme", "--check"], "text"),
]


@pytest.mark.parametrize(("command", "fmt"), ANNOTATED)
def test_invalid_records_become_error_annotations(command, fmt, catalogue_dir, capsys, monkeypatch):
    bad = GOOD.replace("year: 2015", "year: 3000").replace("venue: arxiv", "venue: x")
    (catalogue_dir / "hinton2015distilling.yaml").write_text(bad)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main([*command, "--papers", str(catalogue_dir)]) == 1
    out, err = capsys.readouterr()
    annotated = err if fmt == "json" else out
    lines = [ln for ln in annotated.splitlines() if ln.startswith("::error ")]
    path = str(catalogue_dir / "hinton2015distilling.yaml")
    assert any(f"file={path},line=8::year: " in ln for ln in lines), annotated
    assert any(f"file={path},line=9::venue: unknown venue" in ln for ln in lines), annotated
    if fmt == "json":
        assert json.loads(out)["error_count"] == len(lines)  # stdout stays one JSON document
    monkeypatch.delenv("GITHUB_ACTIONS")
    main([*command, "--papers", str(catalogue_dir)])
    assert "::error" not in "".join(capsys.readouterr())


def test_arena_refuses_no_seed_and_a_merge_without_out(tmp_path, capsys):
    """``--seeds 0`` would run nothing and write an empty file; a merge names its output (the
    default of a run, ./arena.json, is git-ignored). Both are refused before torch is needed."""
    out = tmp_path / "a.json"
    for seeds in ("0", "-1"):
        with pytest.raises(SystemExit) as exit_:
            main(["arena", "--seeds", seeds, "--out", str(out)])
        assert exit_.value.code == 2 and "give at least one seed" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "s.json").write_text("{}")
    assert main(["arena", "merge", str(tmp_path / "s.json")]) == 2
    assert "give --out FILE" in capsys.readouterr().err
    assert not (ROOT / "arena.json").exists()
    ignored = subprocess.run(["git", "check-ignore", "-q", "arena.json"], cwd=ROOT, check=False)
    assert ignored.returncode == 0  # a run's default output never shows up as a change to commit
