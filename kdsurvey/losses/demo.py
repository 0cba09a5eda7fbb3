"""Distil a tiny conv student from a tiny frozen teacher with any registered loss, on CPU.

``demo(name)`` builds both networks, wires their outputs into the loss's forward keywords and runs a
few optimisation steps of the student (and of the loss's own adapters), returning the loss values.
The wiring is generic, driven by the loss's ``example_inputs`` (the shapes its forward expects):

* ``logits_*`` of ``(B, classes)`` are the networks' logits; ``target`` and other integer inputs are
  fixed synthetic labels of the example's shape;
* when the constructor takes ``student_channels``/``teacher_channels``, feature inputs are the
  networks' raw stage maps (or pooled embeddings for 2-d inputs) and the loss is built with their
  channel counts, so its adapters are trained;
* otherwise every student/teacher float input is derived from the networks' features through a small
  head that gives it exactly the example's shape: a 1x1 conv plus resizing for maps, a linear layer
  from the pooled embedding for anything else. Student heads are trained; teacher heads are frozen
  random projections (the teacher stays a fixed target);
* any other input (margins, weights, ...) is taken from ``example_inputs`` as is.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses.registry import get

BATCH = 12  # not a power of two, so batch-less inputs are not mistaken for batched ones
CLASSES = 10
IMAGE = 8
LR = 1e-2
TEACHER_LOGIT_STD = 4.0


class _Net(nn.Module):
    """Three conv stages (8x8, 4x4, 2x2), global pooling, linear classifier."""

    def __init__(self, widths: tuple[int, int, int]):
        super().__init__()
        stages, c_in = [], 3
        for i, c in enumerate(widths):
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                )
            )
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(c_in, CLASSES)
        self.widths = widths

    def forward(self, x: Tensor) -> dict[str, Any]:
        feats = []  # pre-ReLU stage outputs (what AB/OFD expect; fine for the others)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
            x = F.relu(x)
        embedding = x.mean((2, 3))
        return {"feats": feats, "embedding": embedding, "logits": self.fc(embedding)}


def _role(key: str) -> str | None:
    for role in ("student", "teacher"):
        if key.endswith(f"_{role}"):
            return role
    return None


def _stage_for(size: int, feats: list[Tensor]) -> int:
    """Index of the smallest stage map at least ``size`` wide (else the last one)."""
    for i in reversed(range(len(feats))):
        if feats[i].shape[-1] >= size:
            return i
    return 0


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="nearest")


class _Head(nn.Module):
    """Derives a tensor of a given per-sample shape from a network's outputs."""

    def __init__(self, shape: tuple[int, ...], net: _Net, out: dict[str, Any]):
        super().__init__()
        self.shape = shape
        if len(shape) == 3:  # a map (C, H, W): 1x1 conv from the closest stage, then resize
            self.stage = _stage_for(shape[1], out["feats"])
            self.proj = nn.Conv2d(net.widths[self.stage], shape[0], 1)
        else:  # anything else: linear from the pooled embedding
            self.stage = None
            self.proj = nn.Linear(net.widths[-1], math.prod(shape) if shape else 1)

    def forward(self, out: dict[str, Any]) -> Tensor:
        if self.stage is not None:
            return _resize(self.proj(out["feats"][self.stage]), self.shape[1:])
        y = self.proj(out["embedding"])
        return y.reshape(y.shape[0], *self.shape)


def _has_float(values: list) -> bool:
    return any(isinstance(t, Tensor) and t.is_floating_point() for t in values)


def _raw_ready(example: dict) -> bool:
    """Raw network features fit: every student/teacher feature is a map or an embedding."""
    for key, value in example.items():
        if _role(key) and key.startswith(("feat_", "feats_")):
            for t in value if isinstance(value, list) else [value]:
                if not isinstance(t, Tensor) or t.dim() not in (2, 4):
                    return False
    return True


def _is_class_labels(value: Any) -> bool:
    return (
        isinstance(value, Tensor)
        and not value.is_floating_point()
        and value.shape == (BATCH,)
        and int(value.max()) < CLASSES
    )


def _labels(teacher_logits: Tensor) -> Tensor:
    """Synthetic ground truth: the teacher's predictions, one of them wrong (a good teacher)."""
    labels = teacher_logits.argmax(1)
    labels[-1] = (labels[-1] + 1) % CLASSES
    return labels


def _takes_channels(cls: type) -> bool:
    params = inspect.signature(cls.__init__).parameters
    return "student_channels" in params and "teacher_channels" in params


def _optional_params(cls: type) -> set[str]:
    params = inspect.signature(cls.forward).parameters
    return {k for k, p in params.items() if p.default is not inspect.Parameter.empty}


class _Wiring(nn.Module):
    """Maps network outputs to the loss's forward kwargs; owns the demo's heads."""

    def __init__(self, example: dict, nets: dict[str, _Net], outs: dict, raw: bool, optional: set):
        super().__init__()
        self.example, self.raw = example, raw
        self.heads = nn.ModuleDict()
        self.plan: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        for key, value in example.items():
            role = _role(key)
            tensors = value if isinstance(value, list) else [value]
            batched = all(
                isinstance(t, Tensor)
                and t.is_floating_point()
                and t.dim() > 0
                and t.shape[0] == BATCH
                for t in tensors
            )
            if role is None or not batched or not tensors:
                if raw and key in optional and _has_float(tensors):
                    continue  # float aux inputs may be tied to the example's channel counts
                if key == "target" and _is_class_labels(value):
                    value = _labels(outs["teacher"]["logits"])
                self.plan[key] = ("const", value)
            elif (
                key.startswith("logits")
                and all(t.shape[1:] == (CLASSES,) for t in tensors)
                and not isinstance(value, list)
            ):
                self.plan[key] = ("logits", role)
            elif raw and key.startswith(("feat_", "feats_")):
                self.plan[key] = self._raw_plan(key, role, tensors, isinstance(value, list), outs)
            else:
                names = []
                for i, t in enumerate(tensors):
                    name = f"{key}_{i}"
                    head = _Head(tuple(t.shape[1:]), nets[role], outs[role])
                    if role == "teacher":
                        head.requires_grad_(False)
                    self.heads[name] = head
                    names.append(name)
                self.plan[key] = ("head", role, names, isinstance(value, list))

    def _raw_plan(self, key, role, tensors, is_list, outs):
        feats = outs[role]["feats"]
        if tensors[0].dim() == 2:
            spec = ("embedding",)
            channels = outs[role]["embedding"].shape[1]
        elif is_list:
            k = min(len(tensors), len(feats))
            spec = ("stages", list(range(len(feats) - k, len(feats))))
            channels = [feats[i].shape[1] for i in spec[1]]
        else:
            spec = ("stage", _stage_for(tensors[0].shape[-1], feats))
            channels = feats[spec[1]].shape[1]
        self.channels[f"{role}_channels"] = channels
        return ("raw", role, spec)

    def forward(self, outs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        kwargs = {}
        for key, plan in self.plan.items():
            kind = plan[0]
            if kind == "const":
                kwargs[key] = plan[1]
            elif kind == "logits":
                kwargs[key] = outs[plan[1]]["logits"]
            elif kind == "raw":
                out, spec = outs[plan[1]], plan[2]
                if spec[0] == "embedding":
                    kwargs[key] = out["embedding"]
                elif spec[0] == "stages":
                    kwargs[key] = [out["feats"][i] for i in spec[1]]
                else:
                    kwargs[key] = out["feats"][spec[1]]
            else:
                _, role, names, is_list = plan
                values = [self.heads[n](outs[role]) for n in names]
                kwargs[key] = values if is_list else values[0]
        return kwargs


def _setup(name: str, seed: int, raw: bool):
    cls = get(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    example = cls.example_inputs(batch=BATCH, dtype=torch.float32, generator=gen)
    if raw and not _raw_ready(example):
        raise ValueError(f"{name}: inputs are not stage maps or embeddings")
    teacher = _Net((16, 32, 32)).eval().requires_grad_(False)
    student = _Net((8, 16, 16))
    images = torch.randn(BATCH, 3, IMAGE, IMAGE, generator=gen)
    with torch.no_grad():
        # a trained teacher is confident: scale its classifier to logits of std TEACHER_LOGIT_STD
        scale = TEACHER_LOGIT_STD / teacher(images)["logits"].std()
        teacher.fc.weight.mul_(scale)
        teacher.fc.bias.mul_(scale)
        outs = {"student": student(images), "teacher": teacher(images)}
    wiring = _Wiring(
        example, {"student": student, "teacher": teacher}, outs, raw, _optional_params(cls)
    )
    loss = cls(**wiring.channels) if raw else cls()
    return loss, student, teacher, wiring, images


def demo(
    name: str,
    steps: int = 30,
    seed: int = 0,
    log: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Distil a tiny student with the loss registered as ``name``; the per-step loss values.

    Runs ``steps`` Adam steps (lr 1e-2) on one fixed synthetic batch, updating the student, the
    demo's student heads and the loss's own parameters; the teacher is frozen.
    ``log(step, value)`` is called after each step when given. Deterministic for a given ``seed``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: extra threads only add overhead
    try:
        return _run(name, steps, seed, log)
    finally:
        torch.set_num_threads(threads)


def _run(name, steps, seed, log) -> list[float]:
    raw = _takes_channels(get(name))
    try:
        loss, student, teacher, wiring, images = _setup(name, seed, raw)
        with torch.no_grad():
            loss(**wiring({"student": student(images), "teacher": teacher(images)}))
    except (ValueError, RuntimeError, TypeError):
        if not raw:
            raise
        raw = False  # the raw features do not fit this loss's adapters: use example-shaped inputs
    loss, student, teacher, wiring, images = _setup(name, seed, raw)
    params = [p for m in (student, wiring, loss) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=LR)
    with torch.no_grad():
        teacher_out = teacher(images)
    values = []
    student.train()
    loss.train()
    for step in range(steps):
        value = loss(**wiring({"student": student(images), "teacher": teacher_out}))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(float(value.detach()))
        if log is not None:
            log(step, values[-1])
    return values


if __name__ == "__main__":  # pragma: no cover - manual run: python -m kdsurvey.losses.demo kd
    import sys

    from kdsurvey.losses.registry import available

    for loss_name in sys.argv[1:] or available():
        vals = demo(loss_name)
        print(f"{loss_name:16s} {vals[0]:12.5g} -> {vals[-1]:12.5g}")
