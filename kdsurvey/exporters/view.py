"""One view of the catalogue per build: what the README and the site show besides the records.

A build renders the README and every site page from the same catalogue. What they need beyond the
records (the survey's papers, the code libraries, the arena's results, when each record was added
according to git, the published site's address, the BibTeX entries, the counts of papers and of
losses per evidence level) is read or computed here, once, on first use, and every exporter takes
it from the same :class:`View`. So the README and the home page cannot count differently, a data
file is read once per build, and ``git log`` runs once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kdsurvey.exporters import arena_page
from kdsurvey.exporters.evidence import against_authors_code
from kdsurvey.exporters.loss_facts import EVIDENCE, LossFacts, loss_facts
from kdsurvey.exporters.render import newest_first
from kdsurvey.gitrepo import added_times
from kdsurvey.problems import Problem
from kdsurvey.records import libraries, survey
from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.model import Paper
from kdsurvey.records.unknowns import HELP_PAGE

#: The published site's configuration (package data): ``site_url`` for links from the README.
SITE_CONFIG = Path(__file__).resolve().parents[1] / "website" / "mkdocs.yml"
NEWEST = 8  # newest additions shown on the home page


@dataclass(frozen=True)
class Counts:
    """The catalogue's numbers, as the README and the home page both print them."""

    papers: int
    with_code: int
    unconfirmed: int  # records with at least one unconfirmed field
    years: Counter  # year -> papers
    losses: int  # losses the papers name that the manifest knows
    evidence: Counter  # evidence level -> losses
    own_code: int  # ``reference`` losses proven against their authors' own code

    @property
    def levels(self) -> list[tuple[str, int]]:
        """(level, losses) in the order of :data:`EVIDENCE`, levels without a loss left out."""
        return [(level, self.evidence[level]) for level in EVIDENCE if self.evidence[level]]


def site_url(config: Path = SITE_CONFIG) -> str:
    """``site_url`` of the site's configuration, read as MkDocs reads it (``INHERIT``, ``!ENV``);
    empty when the file or the key is missing."""
    from mkdocs.utils.yaml import yaml_load

    try:
        with open(config, encoding="utf-8") as handle:
            return str(yaml_load(handle).get("site_url") or "")
    except OSError:
        return ""


class View:
    """Everything the exporters show about ``catalogue``, each part read or computed once.

    ``memo`` (a dict kept between builds, as ``kdsurvey serve`` keeps it) remembers each BibTeX
    entry with the version of its record, so a rebuild writes only the entries that changed.
    """

    def __init__(self, catalogue: Catalogue, memo: dict | None = None, config: Path = SITE_CONFIG):
        self.catalogue = catalogue
        self.memo = memo
        self.config = config

    @classmethod
    def of(cls, source: Catalogue | View) -> View:
        """``source`` itself when it is a view; else a new view of the catalogue (a test or a
        single render)."""
        return source if isinstance(source, View) else cls(source)

    # -- the data files beside the records ----------------------------------------------------

    @cached_property
    def _survey(self) -> tuple[survey.Survey | None, list[Problem]]:
        path = self.catalogue.root / survey.SURVEY_FILE
        if not path.is_file():
            return None, []
        try:
            return survey.load(path, (p.id for p in self.catalogue.papers)), []
        except survey.SurveyError as exc:
            return None, exc.problems

    @cached_property
    def _libraries(self) -> tuple[list[libraries.Library] | None, list[Problem]]:
        path = self.libraries_path
        if not path.is_file():
            return None, []
        try:
            return libraries.load(path), []
        except libraries.LibrariesError as exc:
            return None, exc.problems

    @property
    def survey(self) -> survey.Survey | None:
        """The survey the catalogue started from; None without a valid ``survey.yaml``."""
        return self._survey[0]

    @property
    def libraries_path(self) -> Path:
        return self.catalogue.root / libraries.LIBRARIES_FILE

    @property
    def libraries(self) -> list[libraries.Library] | None:
        """The code libraries of ``libraries.yaml``; None without the file. A broken file raises
        :class:`~kdsurvey.records.libraries.LibrariesError` (``validate`` reports it first)."""
        found, problems = self._libraries
        if problems:
            raise libraries.LibrariesError(problems)
        return found

    @property
    def data_problems(self) -> list[Problem]:
        """Problems of the data files that name records or losses (``libraries.yaml``,
        ``survey.yaml``), when they exist."""
        return [*self._libraries[1], *self._survey[1]]

    @cached_property
    def arena(self) -> dict | None:
        """The arena's results file (``results/arena.json``), None when there is none."""
        return arena_page.load(arena_page.results_path(self.catalogue))

    @cached_property
    def language_arena(self) -> dict | None:
        """The arena's language track (``results/arena-lm.json``), None when there is none."""
        return arena_page.load(arena_page.results_path(self.catalogue, arena_page.LANGUAGE))

    # -- git and the published site -----------------------------------------------------------

    @cached_property
    def added(self) -> dict[str, int]:
        """id -> commit time (seconds) at which the record was added, from one ``git log``;
        {} without history."""
        out = added_times(self.catalogue.root)
        if out is None:
            return {}
        added: dict[str, int] = {}
        for chunk in out.split("\x00")[1:]:
            lines = chunk.strip().splitlines()
            if not lines or not lines[0].isdigit():
                continue
            stamp, *names = lines
            for name in names:
                stem = Path(name.strip()).stem
                if name.endswith(".yaml") and stem:
                    added.setdefault(stem, int(stamp))  # newest commit comes first
        return added

    def newest(self, count: int = NEWEST) -> list[Paper]:
        """The papers most recently added (git); records not committed yet first."""
        order = {p.id: i for i, p in enumerate(newest_first(self.catalogue.papers))}
        return sorted(
            self.catalogue.papers, key=lambda p: (-self.added.get(p.id, 2**62), order[p.id])
        )[:count]

    @cached_property
    def site_url(self) -> str:
        """The published site's address (``site_url``), without a trailing slash."""
        return site_url(self.config).rstrip("/")

    @property
    def help_url(self) -> str:
        """The help page's address on the published site."""
        return f"{self.site_url}/catalogue/{HELP_PAGE}/"

    # -- derived from the records ------------------------------------------------------------

    @cached_property
    def losses(self) -> dict[str, LossFacts | None]:
        """Every loss the papers name -> its manifest facts (None for a name it lacks)."""
        return loss_facts(self.catalogue)

    @cached_property
    def counts(self) -> Counts:
        papers = self.catalogue.papers
        by_id = {p.id: p for p in papers}
        known = [info for info in self.losses.values() if info]
        return Counts(
            papers=len(papers),
            with_code=sum(1 for p in papers if p.links.code),
            unconfirmed=sum(1 for p in papers if p.unconfirmed),
            years=Counter(p.year for p in papers),
            losses=len(known),
            evidence=Counter(info.evidence for info in known),
            own_code=sum(
                1
                for info in known
                if info.evidence == "reference"
                and against_authors_code(info, by_id.get(info.paper))
            ),
        )

    @cached_property
    def bibtex(self) -> dict[str, str]:
        """id -> the paper's BibTeX entry, in key order; joined by blank lines they are the
        catalogue's BibTeX file (:func:`bibtex_file`)."""
        from kdsurvey.exporters.citations import entries

        catalogue = self.catalogue
        if self.memo is None:
            return entries(catalogue)
        known = self.memo.setdefault("bibtex", {})
        out = {}
        for p in sorted(catalogue.papers, key=lambda p: p.id):  # the file's order
            key = (p.model_dump_json(), catalogue.venues[p.venue].model_dump_json())
            if known.get(p.id, (None,))[0] != key:
                known[p.id] = (key, entries(catalogue, [p])[p.id])
            out[p.id] = known[p.id][1]
        return out

    @property
    def bibtex_file(self) -> str:
        """The whole BibTeX file, byte for byte what ``kdsurvey export bibtex`` writes."""
        from kdsurvey.exporters.citations import join_entries

        return join_entries(self.bibtex.values())
