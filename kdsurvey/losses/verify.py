"""Run reference case files against the registry: the proof that each loss computes what the
authors' code computes.

A case file (format: ``tests/fixtures/official_cases/README.md``) names a method, constructor kwargs, input
tensors and the expected loss and student gradients produced by the official implementation.
``run_file`` rebuilds the loss from the registry, replays every case and reports the largest
deviations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from kdsurvey.losses.manifest import CASES
from kdsurvey.losses.registry import create

# The folder ``kdsurvey losses verify`` replays when given none: the repository's stored cases.
DEFAULT_CASES = CASES

_DTYPES = {"float64": torch.float64, "float32": torch.float32, "int64": torch.int64}


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case: how far the loss and the student gradients were from the
    official numbers."""

    method: str
    case: str
    loss_diff: float  # |got - want| of the loss value; nan when the case could not run
    grad_diff: float  # largest |got - want| over every student gradient element
    passed: bool
    error: str = ""


def to_tensor(spec: dict, requires_grad: bool = False, device: str = "cpu") -> torch.Tensor:
    """Build a tensor from the case format ``{"shape", "dtype", "data"}``."""
    dtype = _DTYPES[spec["dtype"]]
    tensor = torch.tensor(spec["data"], dtype=dtype, device=device).reshape(spec["shape"])
    return tensor.requires_grad_(requires_grad and dtype.is_floating_point)


def build_args(inputs: list[dict], args: dict, device: str = "cpu") -> tuple[dict, dict]:
    """Forward kwargs for a case, and the student tensors (by name) whose gradients are checked."""
    roles = {item["name"]: item.get("role") for item in inputs}
    kwargs, students = {}, {}
    for name, value in args.items():
        grad = roles.get(name) == "student"
        if isinstance(value, list):
            kwargs[name] = [to_tensor(v, grad, device) for v in value]
        elif isinstance(value, dict) and "shape" in value:
            kwargs[name] = to_tensor(value, grad, device)
        else:
            kwargs[name] = value
        if grad:
            students[name] = kwargs[name]
    return kwargs, students


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float, atol: float) -> tuple[bool, float]:
    if got.shape != want.shape:
        return False, float("inf")
    diff = (got.double().cpu() - want.double()).abs()
    ok = bool((diff <= atol + rtol * want.double().abs()).all())
    return ok, float(diff.max()) if diff.numel() else 0.0


def run_case(spec: dict, case: dict, device: str = "cpu") -> CaseResult:
    """Replay one case of a case file on ``device``; any exception is a failure, never a skip."""
    method, name = spec["method"], case["name"]
    rtol, atol = spec.get("rtol", 1e-6), spec.get("atol", 1e-8)
    try:
        loss = create(method, **case.get("kwargs", {})).to(device)
        kwargs, students = build_args(spec["inputs"], case["args"], device)
        value = loss(**kwargs)
        value.backward()
        want = torch.tensor(case["expected"]["loss"], dtype=torch.float64)
        ok, loss_diff = _close(value.detach().reshape(()), want, rtol, atol)
        grad_diff = 0.0
        for gname, expected in case["expected"].get("grad", {}).items():
            got_list = students[gname] if isinstance(students[gname], list) else [students[gname]]
            want_list = expected if isinstance(expected, list) else [expected]
            if len(got_list) != len(want_list):
                raise ValueError(f"{gname}: {len(got_list)} gradients, expected {len(want_list)}")
            for got_t, want_spec in zip(got_list, want_list, strict=True):
                got_g = got_t.grad if got_t.grad is not None else torch.zeros_like(got_t)
                g_ok, g_diff = _close(got_g, to_tensor(want_spec), rtol, atol)
                ok, grad_diff = ok and g_ok, max(grad_diff, g_diff)
        return CaseResult(method, name, loss_diff, grad_diff, ok)
    except Exception as exc:  # noqa: BLE001 - a broken loss is reported as a failed case
        return CaseResult(
            method, name, float("nan"), float("nan"), False, f"{type(exc).__name__}: {exc}"
        )


def run_file(path: Path, device: str = "cpu") -> list[CaseResult]:
    """Replay every case of one case file."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    return [run_case(spec, case, device) for case in spec["cases"]]


def run_dir(directory: Path = DEFAULT_CASES, device: str = "cpu") -> list[CaseResult]:
    """Replay every ``*.json`` case file of a folder, in name order."""
    results = []
    for path in sorted(Path(directory).glob("*.json")):
        results.extend(run_file(path, device))
    return results
