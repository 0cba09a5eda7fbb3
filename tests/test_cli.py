"""The command line as CI and contributors meet it: exit codes, messages, --help, json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import GOOD, ROOT

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
