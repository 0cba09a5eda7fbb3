"""The shape of a paper record and of the venues table, as pydantic v2 models.

Records are data (``papers/<id>.yaml``); these models are the single definition of what a valid
record is. Rules that need more than one record (duplicates, unknown venue, loss names) live in
:mod:`kdsurvey.records.catalogue`.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from kdsurvey.records.results import Result

MIN_YEAR = 1980
MAX_YEAR = 2030

# Words skipped when the id takes the first word of the title (as Google Scholar keys do).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "on",
        "of",
        "in",
        "for",
        "to",
        "via",
        "with",
        "and",
        "by",
        "from",
        "at",
        "is",
        "are",
        "as",
        "into",
        "toward",
        "towards",
        "do",
        "does",
    ]
)

#: Lowercase words that belong to the family name that follows them (Luc van Gool).
PARTICLES = frozenset(
    {
        "van",
        "von",
        "de",
        "der",
        "den",
        "da",
        "di",
        "del",
        "della",
        "dos",
        "das",
        "du",
        "la",
        "le",
        "ter",
        "ten",
        "bin",
        "al",
        "el",
    }
)

ARXIV_RE = re.compile(r"^(\d{4}\.\d{4,5}|[a-z\-]+(\.[A-Z]{2})?/\d{7})$")
DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")
AUTHOR_RE = re.compile(r"^[^,\s][^,]*, [^,\s][^,]*$")
#: The primary arXiv class of a record whose ``links.arxiv_class`` is absent (BibTeX's
#: ``primaryClass``): the catalogue is about vision-first distillation.
DEFAULT_ARXIV_CLASS = "cs.CV"
GITHUB_RE = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
PAGES_RE = re.compile(r"^\d+(--\d+)?$|^[A-Za-z]?\d+$")
_PAGE_RANGE = re.compile(r"^(\d+) ?[-\u2010\u2011\u2013\u2014] ?(\d+)$")  # hyphen, en or em dash


class Category(str, Enum):
    """What kind of knowledge is distilled: outputs, intermediate features, or relations."""

    logit = "logit"
    feature = "feature"
    similarity = "similarity"


class VenueKind(str, Enum):
    conference = "conference"
    journal = "journal"
    preprint = "preprint"


def ascii_fold(text: str) -> str:
    """Drop accents and anything non-ASCII: ``Kölsch`` -> ``Kolsch``."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def family_name(author: str) -> str:
    """The family name of an author written ``Family, Given``."""
    return author.split(",", 1)[0].strip()


#: The id's first part when no author is known (``unknown2023local``); rename once one is.
NO_AUTHOR = "unknown"


def citation_key(first_author: str | None, year: int, title: str) -> str:
    """The id a record must have: family name + year + first non-stopword of the title.

    With no known author (``first_author`` None) the family name is :data:`NO_AUTHOR`.
    """
    family = re.sub(r"[^a-z]", "", ascii_fold(family_name(first_author or NO_AUTHOR)).lower())
    words = re.findall(r"[a-z0-9]+", ascii_fold(title).lower())
    word = next((w for w in words if w not in STOPWORDS), "")
    return f"{family}{year}{word}"


def _check_arxiv(value: str) -> str:
    match = ARXIV_RE.match(value)
    # Since January 2015 (yymm 1501) new-style ids have five digits after the dot.
    new_style = match and "." in value and "/" not in value
    if not match or (new_style and (len(value.split(".")[1]) == 5) != (value[:4] >= "1501")):
        raise ValueError("must be an arXiv id like 2203.08679 or cs/0112017, without version")
    return value


def _check_doi(value: str) -> str:
    if not DOI_RE.match(value):
        raise ValueError(
            "must be a bare DOI like 10.1109/CVPR52688.2022.01165 (no https://doi.org/)"
        )
    return value


def _check_author(value: str) -> str:
    if not AUTHOR_RE.match(value):
        raise ValueError(f"{value!r} must be written 'Family, Given' (one comma)")
    return value


def _check_pages(value: str) -> str:
    """BibTeX's ``first--last``; a single hyphen or a dash between two numbers means the same."""
    value = _PAGE_RANGE.sub(r"\1--\2", value)
    if not PAGES_RE.match(value):
        raise ValueError(
            "must be a range written first--last (10925--10934), one page (1504) or an article "
            "number (e1234)"
        )
    return value


def _check_text(value: str) -> str:
    if value != value.strip() or "  " in value or "\n" in value:
        raise ValueError("must be one line without leading, trailing or double spaces")
    return value


ArxivId = Annotated[str, AfterValidator(_check_arxiv)]
Doi = Annotated[str, AfterValidator(_check_doi)]
Author = Annotated[str, AfterValidator(_check_author)]
Line = Annotated[str, Field(min_length=1), AfterValidator(_check_text)]
Pages = Annotated[
    str,
    AfterValidator(_check_pages),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d+ ?(--|[-\u2010\u2011\u2013\u2014]) ?\d+$|^[A-Za-z]?\d+$",
            "description": "first--last (a single hyphen or a dash is read as --), one page, or "
            "an article number",
        }
    ),
]
#: A key of ``papers/tasks.yaml`` (the catalogue checks it is one, as it does for venues).
TaskKey = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
Url = Annotated[HttpUrl, Field(description="An http(s) URL")]


class Links(BaseModel):
    """Where the paper and its code live. ``paper`` is the page a reader should open first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paper: Url
    arxiv: ArxivId | None = None
    arxiv_class: str | None = Field(
        default=None,
        pattern=r"^[a-z-]+(\.[A-Za-z-]+)?$",
        description="primary arXiv category (BibTeX primaryClass), e.g. stat.ML; cs.CV if absent",
    )
    doi: Doi | None = None
    code: Url | None = None
    code_official: bool | None = Field(
        default=None, description="True when `code` is the authors' own repository"
    )
    code_scope: Literal["evaluation", "tools", "placeholder"] | None = Field(
        default=None,
        description="what `code` holds when it is not the training code: evaluation (inference or "
        "evaluation only), tools (data preparation only), placeholder (a README announcing the "
        "code); absent: the training code",
    )
    project: Url | None = None

    @field_validator("code")
    @classmethod
    def _github_form(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and value.host == "github.com" and not GITHUB_RE.match(str(value)):
            raise ValueError("a GitHub code link must be https://github.com/<owner>/<repo>")
        return value


#: The fields an ``unconfirmed`` entry may name: every record field (top level or ``links``)
#: that holds a fact about the paper, not the record's own bookkeeping.
UnconfirmedField = Literal[
    "title",
    "authors",
    "year",
    "venue",
    "category",
    "survey_category",
    "tasks",
    "loss",
    "volume",
    "number",
    "pages",
    "summary",
    "paper",
    "arxiv",
    "arxiv_class",
    "doi",
    "code",
    "code_official",
    "project",
]


class Paper(BaseModel):
    """One paper of the catalogue: ``papers/<id>.yaml``, fields in the order records write them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z]+[0-9]{4}[a-z0-9]+$", description="citation key, == file name")
    title: Line
    authors: list[Author] = Field(
        description="complete, in order, 'Family, Given'; only the confirmed names (or none) when "
        "unconfirmed.authors says why"
    )
    year: int = Field(ge=MIN_YEAR, le=MAX_YEAR, description="year of the cited (venue) version")
    venue: str = Field(description="key into papers/venues.yaml")
    category: Category
    survey_category: Category | None = Field(
        default=None,
        description="the survey's section, only when it differs from category (what the method "
        "actually distils)",
    )
    tasks: list[TaskKey] = Field(min_length=1, description="keys of papers/tasks.yaml")
    links: Links
    loss: Annotated[
        list[str],
        # Records may write one name as a plain string; the model normalises it to a list.
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                ]
            }
        ),
    ] = Field(
        min_length=1, description="registry names in kdsurvey.losses; the first is the main one"
    )
    volume: str | None = None
    number: str | None = None
    pages: Pages | None = None
    summary: Line = Field(description="one plain sentence: what is distilled and how")
    notes: str | None = None
    unconfirmed: dict[UnconfirmedField, Line] = Field(
        default_factory=dict,
        validate_default=True,
        description="field name -> one sentence: what was searched and why the value is missing "
        "or only partly known",
    )
    results: list[Result] = Field(
        default_factory=list, description="numbers the paper reports (kdsurvey.records.results)"
    )

    @field_validator("unconfirmed")
    @classmethod
    def _authors_explained(cls, value: dict, info: ValidationInfo) -> dict:
        # ``authors`` comes first, so it is validated by now (absent from info.data if invalid).
        if info.data.get("authors") == [] and "authors" not in value:
            raise ValueError(
                "authors is empty: say in unconfirmed.authors what was searched and why no name "
                "is known"
            )
        return value

    @field_validator("survey_category")
    @classmethod
    def _differs(cls, value: Category | None, info: ValidationInfo) -> Category | None:
        if value is not None and value == info.data.get("category"):
            raise ValueError("equals category: give survey_category only when the two differ")
        return value

    @field_validator("loss", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("tasks", "loss")
    @classmethod
    def _unique(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("has repeated entries")
        return value

    @property
    def key(self) -> str:
        """The id the key rule gives (without a collision suffix)."""
        return citation_key(self.authors[0] if self.authors else None, self.year, self.title)


class Venue(BaseModel):
    """An entry of ``papers/venues.yaml``: where papers appear."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    short: Line = Field(description="the name shown in lists, e.g. CVPR")
    name: Line = Field(description="the full name, used as BibTeX booktitle/journal")
    kind: VenueKind
    first_year: int | None = Field(default=None, ge=1900, le=MAX_YEAR)
    every: Literal[1, 2] = Field(default=1, description="held every year, or every other year")
    publisher: Line | None = None
    aliases: list[Line] = Field(
        default_factory=list,
        description="other spellings BibTeX entries and journal references use (DBLP's "
        "abbreviations, older names), matched when importing",
    )


class TaskInfo(BaseModel):
    """An entry of ``papers/tasks.yaml``: a problem papers evaluate distillation on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Line


class CategoryInfo(BaseModel):
    """An entry of ``papers/categories.yaml``: the sections of the survey."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Line
    intro: str
