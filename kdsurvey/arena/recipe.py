"""Which task each loss runs on, at which weights, with which extra inputs; and which cannot run.

One shared recipe for all losses: no per-loss tuning beyond the sweep of :mod:`.sweep`. Each
loss trains at its authors' settings, read from the loss itself (``presets``, sources given on
each loss page): its constructor defaults (the distillation weight among them), the label
term's weight and the warm-up; a preset named after the task wins where the loss has one.
"""

from __future__ import annotations

import inspect
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.arena import data
from kdsurvey.arena.sweep import BASELINE  # the task-only student (no distillation)
from kdsurvey.losses import available, get

# Losses whose paper targets dense prediction run on the digit-scenes segmentation task; every
# other loss runs on classification.
SEGMENTATION = {
    "attnfd",
    "bpkd",
    "ccd",
    "cirkd",
    "cwd",
    "dsd",
    "fakd",
    "fast_seg_kd",
    "idd",
    "ifvd",
    "ka",
    "local_structure",
    "prrd",
    "rawkd",
    "skd_pa",
    "skd_pixel",
    "xray_kd",
}

# Losses that fit neither task, with the reason (checked by the tests: each really fails).
NOT_FITTING: dict[str, str] = {
    "alp_kd": "ALP-KD attends over several teacher layers of one width (a transformer's hidden "
    "states); missing harness feature: taps chosen per loss (a Task taps one list of stages for "
    "every loss, and the arena's CNN stages each have their own width)",
    "hsakd": "HSAKD matches auxiliary classifiers (4C-way: class x rotation) hung on every stage "
    "of both networks, the teacher's trained beforehand on the rotated views with the teacher "
    "frozen; the rotated views come from the views= hook, but the missing harness feature is a "
    "teacher-preparation stage (training auxiliary heads on the frozen teacher before "
    "distillation)",
}


LANGUAGE = (
    "a token-level language-model loss ([B, T, V] logits, [B, T] targets): it runs in the "
    "arena's language track, `kdsurvey arena --task language`"
)


@cache  # the registry does not change in a process; plans ask once per loss and task
def is_language(name: str) -> bool:
    """True for a language-model loss: its example gives ``[B, T, V]`` logits and ``[B, T]``
    targets (vocabularies may differ between student and teacher)."""
    ex = get(name).example_inputs(batch=2)
    s, y = ex.get("logits_student"), ex.get("target")
    return (
        isinstance(s, Tensor) and isinstance(y, Tensor) and s.dim() == 3 and y.shape == s.shape[:2]
    )


def why_not_fitting(name: str) -> str | None:
    """Why a loss runs on neither image task (``None`` when it runs on one)."""
    if name in NOT_FITTING:
        return NOT_FITTING[name]
    return LANGUAGE if name != BASELINE and is_language(name) else None


def home_tasks(name: str) -> list[str]:
    """The tasks a loss runs on: ``kd`` and the baseline run on both."""
    if name in (BASELINE, "kd"):
        return ["classification", "segmentation"]
    get(name)  # KeyError with close matches for an unknown name
    if why_not_fitting(name):
        return []
    if name in SEGMENTATION:
        return ["segmentation"]
    return ["classification"]


def preset_name(name: str, task: str) -> str | None:
    """The loss's training settings for ``task``: its preset named after the task when it has
    one (e.g. MGD's ``segmentation``), else its default (``None``)."""
    return task if task in get(name).presets else None


def all_jobs_losses() -> list[str]:
    return [BASELINE, *available()]


def loss_kwargs(name: str, task: str, n_data: int | None = None) -> dict:
    """Constructor keywords beyond the shape-derived ones: only what the task dictates."""
    init = inspect.signature(get(name).__init__).parameters
    kw = {}
    if task == "segmentation" and name in ("ifvd", "idd"):
        kw["num_classes"] = data.SEG_CLASSES
    if name == "cirkd":
        kw["num_classes"] = None  # its memory terms are off by default (weight 0): no memory
    if "n_data" in init and n_data:  # CRD's memory banks: one row per training sample
        kw["n_data"] = n_data
    if "seed" in init:
        kw["seed"] = 0
    return kw


# -- extra inputs ------------------------------------------------------------------------------
def _regions(feat: Tensor, fc: torch.nn.Linear) -> Tensor:
    """SDD's region logits ``(B, K, 5)``: the FC on the global map and its 2x2 SPP regions."""
    pooled = torch.cat([F.adaptive_avg_pool2d(feat, s).flatten(2) for s in (1, 2)], 2)
    return torch.einsum("bcn,kc->bkn", pooled, fc.weight) + fc.bias[None, :, None]


def _strong(ctx):
    """A second, stronger view (2-pixel shifts + Gaussian noise), the same for both networks."""
    if not hasattr(ctx, "strong"):
        g = torch.Generator().manual_seed(int(ctx.inputs.sum().item() * 1000) % (2**31))
        x, _ = data.random_shift(ctx.inputs, None, g, pixels=2)
        x = x + 0.1 * torch.randn(x.shape, generator=g)
        with torch.no_grad():
            ctx.strong_teacher = ctx.distiller.teacher(x)
        ctx.strong = ctx.distiller.student(x)
    return ctx


def _flat_logits(t: Tensor) -> Tensor:
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]) if t.dim() == 4 else t


def _class_prior(split: data.Split):
    """GKL's global information: ``onehot(target) @ prior``, prior = per-class mean teacher
    probabilities on the student's training set (computed once)."""
    cache: dict = {}

    def fn(ctx):
        if "prior" not in cache:
            with torch.no_grad():
                p = F.softmax(ctx.distiller.teacher(split.x_student.to(ctx.inputs.device)), 1)
            y = split.y_student.to(p.device)
            cache["prior"] = torch.stack([p[y == k].mean(0) for k in range(p.shape[1])])
        return cache["prior"][ctx.target]

    return fn


def providers(name: str, task: str, split: data.Split | None = None) -> dict:
    """Inputs the Distiller cannot derive by itself, for this loss on this task."""
    cls = get(name)
    params = inspect.signature(cls.forward).parameters
    init = inspect.signature(cls.__init__).parameters
    out = {}
    if "class_prior" in params and "gi" in init and init["gi"].default and split is not None:
        out["class_prior"] = _class_prior(split)
    if "classifier_teacher" in params:
        out["classifier_teacher"] = lambda ctx: ctx.distiller.teacher.fc
    if "idx" in params:  # CRD: the samples' dataset indices, given by the loop as index=
        out["idx"] = lambda ctx: ctx.extra["index"].to(ctx.inputs.device)
    if "classifier_weight" in params:  # FAKD: the classifier's input and parameters
        out["feat_student"] = lambda ctx: ctx.feats_student[-1]
        out["classifier_weight"] = lambda ctx: ctx.distiller.student.classifier.weight
        out["classifier_bias"] = lambda ctx: ctx.distiller.student.classifier.bias
    if "logits_strong_student" in params:
        out["logits_strong_student"] = lambda ctx: _strong(ctx).strong
        out["logits_strong_teacher"] = lambda ctx: _strong(ctx).strong_teacher
    if name == "dsd":  # [backbone feature, head feature, class scores], as CIRKD's script passes
        out["feats_student"] = lambda ctx: [*ctx.feats_student[1:], ctx.student_out]
        out["feats_teacher"] = lambda ctx: [*ctx.feats_teacher[1:], ctx.teacher_out]
    if name == "cwd":  # CWD distils the dense logit maps (official: the segmentation head output)
        out["feat_student"] = lambda ctx: ctx.student_out
        out["feat_teacher"] = lambda ctx: ctx.teacher_out
    if name in ("sdd_kd", "sdd_dkd"):
        out["logits_student"] = lambda ctx: _regions(
            ctx.feats_student[-1], ctx.distiller.student.fc
        )
        out["logits_teacher"] = lambda ctx: _regions(
            ctx.feats_teacher[-1], ctx.distiller.teacher.fc
        )
    if task == "segmentation" and "logits_student" in params:
        try:
            ex = cls.example_inputs(batch=4)
        except Exception:  # noqa: BLE001
            ex = {}
        if isinstance(ex.get("logits_student"), Tensor) and ex["logits_student"].dim() == 2:
            # a classification loss on a dense task: every pixel is a sample (pixel-wise KD)
            out["logits_student"] = lambda ctx: _flat_logits(ctx.student_out)
            out["logits_teacher"] = lambda ctx: _flat_logits(ctx.teacher_out)
            if "target" in params:
                out["target"] = lambda ctx: ctx.target.reshape(-1)
    return out
