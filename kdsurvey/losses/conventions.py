"""The "same" token-level loss across libraries and papers, stated once (``conventions.yaml``).

Libraries name and scale the same divergence differently (TRL's ``beta`` is 1 - DistiLLM's
``lam``; torchtune and DistiLLM return a cross-entropy where DistillKit returns the KL; T^2 and
the reductions differ). Each row of ``conventions.yaml`` states one such convention as two forms
of registered losses and the relation between their values on the same inputs; one parametrised
test (``tests/test_conventions.py``) runs both forms of every row, and the site and README print
the rows, so what they say is what is tested. Torch-free: the site reads it.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONVENTIONS_FILE = Path(__file__).with_name("conventions.yaml")
TOPICS = ("parameterisation", "value", "reduction", "temperature", "weight")
# The numbers of the inputs a relation may use besides ``b`` (see conventions.yaml).
VARIABLES = ("b", "H", "N", "B", "V", "T")
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    loss: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    target: bool = True


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    claim: str
    a: _Form
    b: _Form
    relation: str

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, value: str) -> str:
        if value not in TOPICS:
            raise ValueError(f"topic must be one of {', '.join(TOPICS)}")
        return value

    @field_validator("relation")
    @classmethod
    def _parses(cls, value: str) -> str:
        evaluate(value, dict.fromkeys(VARIABLES, 1.0))
        return value


@dataclass(frozen=True)
class Form:
    """A registered loss with constructor kwargs, fed labels (``target``) or not."""

    loss: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    target: bool = True

    def label(self) -> str:
        """``gkd_jsd(beta=0.1)``, as the tables print it (``, no labels`` when ``target`` is off)."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.loss}({args})" + ("" if self.target else ", no labels")


@dataclass(frozen=True)
class Convention:
    """One row: ``value(a) == relation`` evaluated with ``b = value(b)``."""

    topic: str
    claim: str
    a: Form
    b: Form
    relation: str


def load(path: Path = CONVENTIONS_FILE) -> list[Convention]:
    """The rows of ``path``; ``ValueError`` listing every problem (row index and field)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of rows")
    rows, problems = [], []
    for i, item in enumerate(data):
        try:
            row = _Row.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                where = ".".join(str(s) for s in err["loc"])
                problems.append(f"row {i + 1}: {where}: {err['msg']}")
            continue
        forms = [Form(f.loss, dict(f.kwargs), f.target) for f in (row.a, row.b)]
        rows.append(Convention(row.topic, row.claim, *forms, row.relation))
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return rows


def evaluate(relation: str, values: dict[str, float]) -> float:
    """The value of ``relation`` (numbers, :data:`VARIABLES`, ``+ - * / **``, parentheses)."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in VARIABLES:
            return float(values[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(
            f"relation {relation!r}: only numbers, {', '.join(VARIABLES)} and + - * / ** are allowed"
        )

    try:
        tree = ast.parse(relation, mode="eval")
    except SyntaxError:
        raise ValueError(f"relation {relation!r} is not an expression") from None
    return walk(tree)
