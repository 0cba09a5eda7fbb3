"""Which task each loss runs on, at which weights, with which extra inputs; and which cannot run.

One shared recipe for all losses: no per-loss tuning. Each loss is built with its constructor
defaults (the paper's, see each docstring) and weighted against the task loss as its paper's
reference training does (:data:`PAPER_WEIGHTS`, sources given); everything else uses the task
loss at weight 1 and the distillation loss at weight 1 (``loss_weight`` default).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.arena import data
from kdsurvey.losses import available, get
from kdsurvey.losses._tokens import TokenLoss

BASELINE = "none"  # the task-only student (no distillation)

# (task weight, distillation weight, source). Distillation weight multiplies the loss's output,
# whose own loss_weight stays at its default of 1.
PAPER_WEIGHTS: dict[str, tuple[float, float, str]] = {
    "kd": (0.1, 0.9, "Hinton et al.; RepDistiller CIFAR recipe -r 0.1 -a 0.9"),
    "normkd": (0.1, 0.9, "official KD_WEIGHT 0.9 / CE_WEIGHT 0.1"),
    "fitnet": (1.0, 100.0, "RepDistiller/mdistiller -b 100"),
    "at": (1.0, 1000.0, "paper beta = 1000"),
    "ft": (1.0, 500.0, "authors' beta = 500"),
    "ft_repdistiller": (1.0, 200.0, "RepDistiller -b 200"),
    "nst": (1.0, 50.0, "mdistiller 50"),
    "sp": (1.0, 3000.0, "mdistiller 3000"),
    "fsp": (1.0, 50.0, "RepDistiller -b 50"),
    "cc": (1.0, 0.02, "RepDistiller -b 0.02"),
    "ofd": (1.0, 1e-3, "official CIFAR 1e-3"),
    "cwd": (1.0, 3.0, "official README lambda 3"),
    "attnfd": (1.0, 2.0, "official attn_lambda 2"),
    "bckd": (1.0, 10.0, "reference script -b 10"),
    "ickd": (1.0, 4.0, "reference CIFAR scripts -b 4"),
    "ifvd": (1.0, 200.0, "official Cityscapes lambda_ifv 200"),
    "skd_pixel": (1.0, 10.0, "official Cityscapes lambda_pi 10"),
    "lskd": (1.0, 9.0, "official CIFAR --kd-weight 9"),
    "lskd_dkd": (1.0, 9.0, "official README --kd-weight 9"),
    "mgd": (1.0, 7e-5, "official classification alpha_mgd 7e-5"),
    "ntce_kd": (1.0, 8.0, "official KD_WEIGHT 8"),
    "semckd": (1.0, 400.0, "official CIFAR-100 -b 400"),
    "ttm": (1.0, 45.0, "official README -b 45"),
    "takd": (0.0, 1.0, "lambda 1.0: label CE weight 1 - lambda"),
    "streamlined_kd": (0.1, 0.9, "official Distiller/SKD.py ce=0.1, kd=0.9 (kd weighs both terms)"),
}
SEG_WEIGHTS = {
    "kd": (1.0, 1.0, "pixel-wise KD as the dense-prediction papers' baseline (task 1, KD 1)"),
    "mgd": (1.0, 2e-5, "official detection/segmentation alpha_mgd 2e-5"),
}

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
    "alp_kd": "ALP-KD attends over layers of one common width (transformer encoders' (B, T, D) "
    "states); the arena's CNN stages differ in width and size and the loss has one projection",
    "dsd": "DSD compares backbone and head features and logits of equal shapes with no adapter; "
    "the arena's student segmenter is thinner than its teacher",
    "kdsvd": "KD-SVD compares singular vectors of student and teacher maps of equal shape and "
    "defines no adapter; the arena's student is thinner than its teacher",
    "sskd": "SSKD trains on four rotated views of every image (a 4x batch the training loop must "
    "build and label); the shared recipe feeds one view per image",
    "vid": "VID takes the student's regressed mean with the teacher's channel count and owns only "
    "the variance, not the regressor; the arena's student is thinner than its teacher",
    "hsakd": "HSAKD matches auxiliary classifiers (4C-way: class x rotation) hung on every stage "
    "of both networks, the teacher's trained beforehand, over a 4x batch of rotated views; the "
    "arena's networks have no auxiliary branches and the shared recipe feeds one view per image",
    "pad_l2": "PAD-L2 takes the student's per-dimension log-variance from a variance branch that "
    "belongs to the student model, and an embedding already of the teacher's width; the arena's "
    "students have no such branch, are thinner than their teachers, and the loss owns no adapter",
    "fsp": "FSP matrices (C_l x C_l+1 per stage pair) must be the same size for student and "
    "teacher and the loss defines no adapter; the arena's student is 4x thinner than its teacher",
    "fsp_torchdistill": "torchdistill's FSP matrices (C_a x C_b per pair of maps) must be the same "
    "size for student and teacher and the loss defines no adapter (nor does torchdistill's); the "
    "arena's student is 4x thinner than its teacher",
    "dist_plus": "DIST+'s feature terms correlate student and teacher maps of equal shape "
    "channel by channel and the loss defines no adapter (nor does torchdistill's); the arena's "
    "student is thinner than its teacher",
}


# Token-level language-model losses have no task in this arena (image classification and
# segmentation): each is listed as not fitting, with this reason.
LANGUAGE_MODEL = (
    "a token-level language-model loss: it takes [B, T, V] logits with -100 labels, and the "
    "arena's tasks are image classification and segmentation"
)
NOT_FITTING.update({n: LANGUAGE_MODEL for n in available() if issubclass(get(n), TokenLoss)})


def home_tasks(name: str) -> list[str]:
    """The tasks a loss runs on: ``kd`` and the baseline run on both."""
    if name in (BASELINE, "kd"):
        return ["classification", "segmentation"]
    if name in NOT_FITTING:
        return []
    get(name)  # KeyError with close matches for an unknown name
    if name in SEGMENTATION:
        return ["segmentation"]
    return ["classification"]


def weights(name: str, task: str) -> tuple[float, float]:
    if name == BASELINE:
        return 1.0, 0.0
    if task == "segmentation" and name in SEG_WEIGHTS:
        return SEG_WEIGHTS[name][:2]
    return PAPER_WEIGHTS.get(name, (1.0, 1.0, ""))[:2]


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
