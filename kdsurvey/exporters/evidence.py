"""What a loss was checked against, said in words that agree with the paper's own links.

The manifest gives a loss's evidence level and, for ``reference`` (and some ``compared``) losses,
the repository whose code produced the stored cases (``reference.repo``) and the repositories it
was cross-checked against (``reference.cross_checked``). The paper record gives its code link,
whether that code is the authors' (``links.code_official``) and, when the linked repository is not
the training code, what it holds instead (``links.code_scope``). :func:`sentence` joins the two, so
a page never says "the official code" beside a page without a code link, nor "no official code is
available" under an official code link.
"""

from __future__ import annotations

import re

from kdsurvey.exporters.loss_facts import EVIDENCE, LossFacts
from kdsurvey.records.model import Paper

# What an official repository holds when ``links.code_scope`` says it is not the training code.
SCOPE = {
    "evaluation": "holds evaluation code only, no training code",
    "tools": "holds only data-preparation tools, no training code",
    "placeholder": "holds no code yet, only a README announcing it",
}
_WRITTEN_FROM = {
    "paper": "written from the paper's full text",
    "abstract": "written from the paper's abstract (the full text was not available either)",
    "title": "written from the paper's title alone (neither the full text nor the abstract was "
    "available): a guess at the method, to be replaced",
}
_GITHUB = re.compile(r"^https?://github\.com/([^/]+/[^/#?]+)", re.I)


def github_repo(url) -> str | None:
    """``owner/name`` of a GitHub URL (``.git`` dropped); None for other hosts."""
    match = _GITHUB.match(str(url or ""))
    return match.group(1).removesuffix(".git") if match else None


def _repo_link(repo: str) -> str:
    return f"[`{repo}`](https://github.com/{repo})"


def official_repo(paper: Paper | None) -> str | None:
    """The authors' own repository of ``paper`` (``owner/name``), when its record links one."""
    if paper is None or not paper.links.code or not paper.links.code_official:
        return None
    return github_repo(paper.links.code)


def against_authors_code(info: LossFacts, paper: Paper | None) -> bool:
    """True when a proven loss's cases (or their cross-checks) come from the authors' own code:
    the README counts these apart from losses proven against a library's implementation."""
    official = (official_repo(paper) or "").lower()
    ref = info.reference or {}
    repos = [ref.get("repo") or "", *(ref.get("cross_checked") or ())]
    return bool(official) and official in (r.lower() for r in repos)


def sentence(info: LossFacts, paper: Paper | None) -> str:
    """One Markdown paragraph: how far ``info`` is proven and against whose code.

    ``paper`` is the record of the paper the loss implements (``info.paper``), None when the
    catalogue lacks it; "the authors' code" always means the code link of that record.
    """
    level = info.evidence
    official = official_repo(paper)
    same = (official or "").lower()
    scope = paper.links.code_scope if paper is not None and official else None
    ref = info.reference or {}
    repo = ref.get("repo")
    if level in ("reference", "compared") and repo:
        how = (
            f"its loss and gradients match those of {ref.get('count', 'the')} stored reference "
            "case" + ("s" if ref.get("count") != 1 else "")
            if level == "reference"
            else "compared on random inputs (no stored case: the loss is random)"
        )
        if official and repo.lower() == same:
            whose = "the authors' official code"
        elif official:
            whose = "not the authors' code (their repository is linked on the paper's page)"
        else:
            whose = "not the authors' code (the paper's record links no official code)"
        text = f"**{level}**: checked against {_repo_link(repo)}, {whose}; {how}."
        others = [r for r in ref.get("cross_checked") or () if r.lower() != repo.lower()]
        if others:
            named = ", ".join(
                _repo_link(r) + (" (the authors' code)" if r.lower() == same else "")
                for r in others
            )
            text += f" Cross-checked against {named}."
        return text
    if level == "compared":
        if official:
            return (
                f"**compared**: compared with the authors' official code "
                f"({_repo_link(official)}) on random inputs, with no stored case."
            )
        return f"**compared**: {EVIDENCE['compared']}"
    if level == "unchecked":
        where = f" ({_repo_link(official)})" if official else ""
        return (
            f"**unchecked**: official code exists{where}, but nobody has compared this loss "
            "with it yet."
        )
    if level in _WRITTEN_FROM:
        if official and scope:
            why = f"the authors' repository ({_repo_link(official)}) {SCOPE[scope]}"
        elif official:
            why = f"the authors' repository ({_repo_link(official)}) does not hold this loss"
        else:
            why = "no official code is available"
        return (
            f"**{level}**: {why}, so this loss was {_WRITTEN_FROM[level]}; the implementation "
            "notes say what had to be inferred."
        )
    return f"**{level}**: {EVIDENCE.get(level, '')}"
