"""The GitHub workflows: lint-clean under actionlint, and installing only what each job needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).parent.parent / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = shutil.which("actionlint")

if ACTIONLINT is None and os.environ.get("CI"):
    raise RuntimeError("actionlint is required under CI: the test extra installs it")


def _steps(path: Path) -> list[dict]:
    jobs = yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"]
    return [step for job in jobs.values() for step in job.get("steps", [])]


def _runs(path: Path) -> str:
    return "\n".join(step.get("run", "") for step in _steps(path))


@pytest.mark.skipif(ACTIONLINT is None, reason="actionlint is not installed (pip install .[test])")
def test_actionlint_finds_nothing():
    # actionlint also knows which action versions run on a removed Node runtime.
    result = subprocess.run(
        [ACTIONLINT, "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_torch_comes_from_the_cpu_index_and_only_where_needed():
    for path in WORKFLOWS:
        for line in _runs(path).splitlines():
            if re.search(r"\btorch\b", line) and "pip install" in line:
                assert "--index-url https://download.pytorch.org/whl/cpu" in line, (path, line)
    # The link check and the site never import torch.
    for name in ("links.yml", "pages.yml"):
        assert "torch" not in _runs(WORKFLOWS[[p.name for p in WORKFLOWS].index(name)])


def test_pages_workflow_builds_on_main_and_deploys():
    path = next(p for p in WORKFLOWS if p.name == "pages.yml")
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    on = workflow.get("on", workflow.get(True))  # PyYAML reads a bare `on:` key as True
    assert on["push"]["branches"] == ["main"]
    uses = [step.get("uses", "") for step in _steps(path)]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    assert "kdsurvey build" in _runs(path)


def test_pull_requests_upload_the_site_preview():
    path = next(p for p in WORKFLOWS if p.name == "ci.yml")
    previews = [
        s
        for s in _steps(path)
        if s.get("uses", "").startswith("actions/upload-artifact@")
        and s.get("with", {}).get("path", "").rstrip("/") == "public"
    ]
    assert previews and previews[0]["if"] == "github.event_name == 'pull_request'"
