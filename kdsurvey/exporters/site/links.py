"""Where the site's "edit" and "source" buttons point: the repository's edit and blob URLs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[3]  # the repository, in a checkout


@dataclass(frozen=True)
class Links:
    """Edit and blob URLs of repository files (records, hand-written pages, loss modules)."""

    repo_url: str | None = None
    branch: str = "main"
    root: Path = ROOT  # repository root, to express record paths

    def edit(self, path: Path | str) -> str | None:
        return f"{self.repo_url}/edit/{self.branch}/{self._rel(path)}" if self.repo_url else None

    def blob(self, path: Path | str) -> str | None:
        return f"{self.repo_url}/blob/{self.branch}/{self._rel(path)}" if self.repo_url else None

    def _rel(self, path: Path | str) -> str:
        path = Path(path)
        if not path.is_absolute():
            return path.as_posix()
        folder = self._folder(path.parent)
        # A catalogue outside the repository (synthetic) is named as papers/.
        return f"{folder}/{path.name}" if folder else f"papers/{path.name}"

    @lru_cache(maxsize=64)  # noqa: B019 - a handful of folders, Links lives as long as a build
    def _folder(self, folder: Path) -> str | None:
        try:
            return folder.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None

    @classmethod
    def from_config(cls, config) -> Links:
        """Repository and branch from ``repo_url`` and ``edit_uri`` (``edit/<branch>/...``)."""
        repo = (config.get("repo_url") or "").rstrip("/") or None
        edit_uri = config.get("edit_uri") or ""
        match = re.match(r"^(?:edit|blob|tree)/([^/]+)/", urlsplit(edit_uri).path.lstrip("/"))
        root = Path(config.config_file_path).resolve().parent if config.config_file_path else ROOT
        return cls(repo, match.group(1) if match else "main", root)
