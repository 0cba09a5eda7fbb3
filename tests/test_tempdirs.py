"""``kdsurvey serve`` and the site build leave nothing in the system's temporary directory.

MkDocs' ``serve`` builds into ``tempfile.mkdtemp(prefix="mkdocs_")`` and removes it only when it
shuts down normally: a server stopped with SIGTERM left one ``mkdocs_*`` folder per run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

from kdsurvey.tempdirs import private_tempdir

pytest.importorskip("mkdocs", reason="the site needs MkDocs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_and_terminate(tmp_path: Path, script: str) -> list[str]:
    """Run ``script`` (which serves on $PORT) with its own TMPDIR, wait until it answers, stop it
    with SIGTERM; the entries it left in that TMPDIR."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "mkdocs.yml").write_text("site_name: t\n", encoding="utf-8")
    (project / "docs" / "index.md").write_text("# Hello\n", encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "PORT": str(port), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # a bound on waiting for start-up, not a speed claim
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert any(tmp.iterdir())  # while serving, the build folder is there
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return sorted(p.name for p in tmp.iterdir())


SERVE = (
    "import os; from mkdocs.commands.serve import serve; "
    "serve('mkdocs.yml', dev_addr='127.0.0.1:' + os.environ['PORT'])"
)


def test_mkdocs_serve_alone_leaves_its_folder_on_sigterm(tmp_path):
    """Why the wrapper exists: MkDocs' own clean-up does not run on SIGTERM."""
    left = _serve_and_terminate(tmp_path, SERVE)
    assert [name for name in left if name.startswith("mkdocs_")], left


def test_serve_in_a_private_tempdir_leaves_nothing_on_sigterm(tmp_path):
    script = "from kdsurvey.tempdirs import private_tempdir\nwith private_tempdir():\n    " + SERVE
    assert _serve_and_terminate(tmp_path, script) == []


def test_private_tempdir_restores_tempfile_and_removes_its_folder():
    before = tempfile.tempdir
    handler = signal.getsignal(signal.SIGTERM)
    with private_tempdir("kdsurvey-test-") as folder:
        assert tempfile.gettempdir() == str(folder)
        (Path(tempfile.mkdtemp(prefix="mkdocs_")) / "x").write_text("x")
    assert not folder.exists()
    assert tempfile.tempdir == before
    assert signal.getsignal(signal.SIGTERM) == handler
