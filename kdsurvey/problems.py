"""One problem type for every check, and one way to print a list of them.

``kdsurvey validate``, ``check metadata``, ``check links`` and the importers all report what is
wrong as :class:`Problem` (where, which field, what, how bad), so a contributor reads the same
``papers/<file>.yaml:<line>: <field>: <message>`` line, CI reads the same JSON shape and GitHub
shows the same annotations whichever command found it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

ERROR, WARNING, NOTICE = "error", "warning", "notice"
SEVERITIES = (ERROR, WARNING, NOTICE)


@dataclass(frozen=True, order=True)
class Problem:
    """One problem, located in a file. Sorting orders by file, then line."""

    path: str
    line: int
    field: str
    message: str
    severity: str = ERROR

    def __str__(self) -> str:
        # Errors carry no label: they are what a reader expects; the rest say what they are.
        label = "" if self.severity == ERROR else f"{self.severity}: "
        return f"{self.path}:{self.line}: {self.field}: {label}{self.message}"

    def as_dict(self) -> dict:
        return asdict(self)


def field_name(loc: tuple) -> str:
    """``links.code`` or ``authors[2]`` from a path of keys and indices (``record`` when empty)."""
    name = ""
    for step in loc:
        name += f"[{step}]" if isinstance(step, int) else (f".{step}" if name else str(step))
    return name or "record"


def text(problems: list[Problem]) -> str:
    """One line per problem, as contributors read them."""
    return "".join(f"{problem}\n" for problem in problems)


def as_json(errors: list[Problem], warnings: list[Problem] = (), **extra) -> dict:
    """The JSON shape every command reports problems in: ``extra`` (what was looked at), then
    ``errors`` and ``warnings`` as lists with their counts, always present (empty lists too), so
    a consumer never has to guess whether a key holds a number or a list."""
    return {
        **extra,
        "errors": [p.as_dict() for p in errors],
        "error_count": len(errors),
        "warnings": [p.as_dict() for p in warnings],
        "warning_count": len(warnings),
    }


def _escape(value: str, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def annotation(problem: Problem, level: str | None = None, title: str | None = None) -> str:
    """A GitHub Actions workflow command (``::error file=...,line=...::field: message``) that
    shows ``problem`` on the line of the pull request's diff. ``level`` overrides the severity
    (``--strict`` makes warnings errors)."""
    properties = f"file={_escape(problem.path, True)},line={problem.line}"
    if title:
        properties += f",title={_escape(title, True)}"
    message = _escape(f"{problem.field}: {problem.message}")
    return f"::{level or problem.severity} {properties}::{message}\n"


def annotations(problems: list[Problem]) -> str:
    return "".join(annotation(problem) for problem in problems)
