"""The survey the catalogue started from (``papers/survey.yaml``): its title and its papers' ids.

The catalogue holds more than the survey (the canon of the KD code libraries, later papers), so
which records are the survey's papers is data, not a count: :func:`check` reports every listed id
that is not a record, located like the records' errors, and the README and site can say "all N
papers of the survey" from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from kdsurvey.problems import Problem
from kdsurvey.records.model import Line
from kdsurvey.records.reading import SURVEY_FILE, display_path, read_mapping, validate_model
from kdsurvey.records.yamlsource import line_of

__all__ = ["SURVEY_FILE", "Survey", "SurveyError", "check", "load"]


class Survey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Line = Field(description="the survey's title, credited on the site")
    papers: list[Line] = Field(min_length=1, description="record ids of the survey's papers")


class SurveyError(Exception):
    """Raised by :func:`load` with every problem found."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def check(data: dict, shown: str, ids: Iterable[str]) -> tuple[Survey | None, list[Problem]]:
    """The survey of a parsed file and its problems: schema, ids listed twice, ids not recorded."""
    problems: list[Problem] = []
    survey = validate_model(Survey, data, shown, problems)
    if survey is None:
        return None, problems
    ids, seen = frozenset(ids), set()
    for index, paper in enumerate(survey.papers):
        line = line_of(data, ("papers", index))
        if paper in seen:
            problems.append(Problem(shown, line, f"papers[{index}]", f"{paper} is listed twice"))
        elif paper not in ids:
            problems.append(
                Problem(shown, line, f"papers[{index}]", f"no record papers/{paper}.yaml")
            )
        seen.add(paper)
    return survey, problems


def load(path: Path | str, ids: Iterable[str]) -> Survey:
    """The survey of ``path``, checked against the record ``ids``; :class:`SurveyError` else."""
    path = Path(path)
    shown = display_path(path)
    problems: list[Problem] = []
    if not path.is_file():
        raise SurveyError([Problem(shown, 1, "file", "is missing")])
    data = read_mapping(path, shown, problems)
    if data is None:
        raise SurveyError(problems)
    survey, found = check(data, shown, ids)
    if found:
        raise SurveyError(found)
    return survey
