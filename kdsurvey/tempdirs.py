"""Temporary folders that do not outlive the command, even when it is stopped.

``mkdocs serve`` builds into ``tempfile.mkdtemp(prefix="mkdocs_")`` and removes that folder in a
``finally`` block, which never runs when the process is ended with SIGTERM (what editors, process
managers and test harnesses send): every stopped ``kdsurvey serve`` left a ``mkdocs_*`` folder in
the system's temporary directory. :func:`private_tempdir` points :mod:`tempfile` at a folder of
our own for the duration, turns SIGTERM into the ``KeyboardInterrupt`` that MkDocs handles, and
removes the folder whatever happens.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def private_tempdir(prefix: str = "kdsurvey-") -> Iterator[Path]:
    """Run the block with ``tempfile.gettempdir()`` a fresh folder, removed at the end; SIGTERM
    stops the block like Ctrl-C (only in the main thread, where signal handlers can be set)."""
    folder = tempfile.mkdtemp(prefix=prefix)
    previous_dir, tempfile.tempdir = tempfile.tempdir, folder
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield Path(folder)
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)
        tempfile.tempdir = previous_dir
        shutil.rmtree(folder, ignore_errors=True)
