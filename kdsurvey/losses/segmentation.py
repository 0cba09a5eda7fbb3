"""Losses for dense prediction (segmentation) distilling relations of pixels, regions or classes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses.base import (
    DistillationLoss,
    check_same_length,
    check_same_shape,
    feature_example,
)
from kdsurvey.losses.registry import register

IGNORE_INDEX = 255

# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------


def _check_dense(student: Tensor, teacher: Tensor, what: str) -> None:
    """``ValueError`` naming both shapes unless both are ``(B, *, H, W)`` with equal B, H, W.

    Student and teacher widths may differ: the relations live in each network's own space.
    """
    ok = (
        student.dim() == 4
        and teacher.dim() == 4
        and student.shape[0] == teacher.shape[0]
        and student.shape[2:] == teacher.shape[2:]
    )
    if not ok:
        shapes = f"student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}"
        raise ValueError(f"{what} shapes differ: {shapes}")


def _check_target(target: Tensor, batch: int) -> None:
    if target.dim() != 3 or target.shape[0] != batch:
        raise ValueError(f"target must be (B, H, W) with B = {batch}, got {tuple(target.shape)}")


def _resize_labels(target: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest-neighbour resize of a label map ``(B, H, W)`` to ``size`` (as ``nn.Upsample``)."""
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    resized = F.interpolate(target[:, None].float(), size=tuple(size), mode="nearest")
    return resized[:, 0].long()


def _class_masks(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """One-hot masks ``(B, K, H, W)``; labels outside ``[0, K)`` (e.g. 255) belong to no class."""
    valid = (labels >= 0) & (labels < num_classes)
    onehot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2)
    return onehot.to(dtype) * valid[:, None].to(dtype)


def _class_prototypes(feat: Tensor, masks: Tensor, eps: float = 1e-6) -> Tensor:
    """Masked mean feature of each class of each image, ``(B, K, C)``: ``sum / (count + eps)``."""
    sums = torch.einsum("bkhw,bchw->bkc", masks, feat)
    return sums / (masks.sum(dim=(2, 3))[..., None] + eps)


def _pixel_similarity(feat: Tensor, detach_norm: bool = False, eps: float = 1e-8) -> Tensor:
    """Cosine similarity between all positions of each map: ``(B, HW, HW)``.

    The norm is ``sqrt(sum_c f^2) + eps`` (as in the SKD code); ``detach_norm`` treats it as a
    constant in the backward pass, as the official SKD pair-wise loss does.
    """
    norm = feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps
    if detach_norm:
        norm = norm.detach()
    flat = (feat / norm).flatten(2)
    return flat.transpose(1, 2) @ flat


def _kl_rows(log_p_student: Tensor, log_p_teacher: Tensor, dim: int) -> Tensor:
    """``KL(p_t || p_s)`` along ``dim`` from log-probabilities (no reduction over other dims)."""
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=dim)


def _seg_logits_example(batch, dtype, generator, large, classes=5) -> dict[str, Tensor]:
    """Student/teacher score maps ``(batch, classes, 8, 8)``; ``(16, 19, 64, 64)`` when large."""
    shape = (16, 19, 64, 64) if large else (batch, classes, 8, 8)
    return {
        "logits_student": torch.randn(*shape, generator=generator, dtype=dtype),
        "logits_teacher": torch.randn(*shape, generator=generator, dtype=dtype) * 2,
    }


def _seg_target(n, size, classes, generator, cell=4) -> Tensor:
    """Blocky random labels ``(n, H, W)`` (``cell`` x ``cell`` regions), about 5% ignored."""
    h, w = size
    coarse = torch.randint(0, classes, (n, -(-h // cell), -(-w // cell)), generator=generator)
    labels = coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :h, :w].clone()
    ignore = torch.rand(n, h, w, generator=generator) < 0.05
    labels[ignore] = IGNORE_INDEX
    return labels


def _feature_target_example(batch, dtype, generator, large, classes=5) -> dict[str, Tensor]:
    """``feature_example`` maps plus labels at twice (four times when large) their size."""
    out = feature_example(batch, dtype, generator, large)
    n, _, h, w = out["feat_student"].shape
    factor = 4 if large else 2
    out["target"] = _seg_target(n, (h * factor, w * factor), classes, generator)
    return out


# ----------------------------------------------------------------------------------------------
# Structured knowledge distillation (Liu et al., CVPR 2019)
# ----------------------------------------------------------------------------------------------


@register("skd_pixel", paper="liu2019structured", family="similarity", evidence="reference")
class SKDPixel(DistillationLoss):
    r"""Pixel-wise distillation of *Structured Knowledge Distillation for Semantic Segmentation*
    (Liu et al., CVPR 2019; catalogue id ``liu2019structured``).

    .. math:: \mathcal{L}_{pi} = \frac{w}{HW}\sum_{b=1}^{B}\sum_{i=1}^{HW}\sum_{k=1}^{K}
        -\,\sigma(z^t_{b,i})_k \log \sigma(z^s_{b,i})_k

    The paper writes a per-pixel KL divergence averaged over pixels; the official code computes the
    cross-entropy against the teacher's soft labels (KL plus the teacher's entropy, a constant for
    the student, so the gradient is the same) and sums, rather than averages, over the batch. The
    default reproduces the code, which is why the loss is not zero when the student equals the
    teacher.

    Args:
        loss_weight: ``w`` (:math:`\lambda_{pi}`; 10 in the official Cityscapes runs).

    Shapes: ``logits_student``, ``logits_teacher``: ``(B, K, H, W)``; returns a scalar.
    Checked against irfanICMLL/structure_knowledge_distillation ``utils/criterion.py``
    ``CriterionPixelWise`` (reference cases ``skd_pixel``).
    """

    zero_at_match = False  # cross-entropy: its minimum is the teacher's entropy

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        p_t = F.softmax(logits_teacher.detach(), dim=1)
        ce = -(p_t * F.log_softmax(logits_student, dim=1)).sum()
        h, w = logits_student.shape[2:]
        return self.loss_weight * ce / (h * w)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _seg_logits_example(batch, dtype, generator, large)


@register("skd_pa", paper="liu2019structured", family="similarity", evidence="reference")
class SKDPairwise(DistillationLoss):
    r"""Pair-wise distillation of *Structured Knowledge Distillation for Semantic Segmentation*
    (Liu et al., CVPR 2019; catalogue id ``liu2019structured``).

    Both feature maps are max-pooled into patches (kernel = stride =
    ``(int(H*scale), int(W*scale))``, ceil mode); with :math:`\hat f_i = f_i/(\|f_i\|_2+10^{-8})`
    over channels and :math:`a_{ij} = \hat f_i^\top \hat f_j` over the :math:`N'=H'W'` pooled
    positions,

    .. math:: \mathcal{L}_{pa} = \frac{w}{B\,N'^2}\sum_{b}\sum_{i,j}(a^t_{b,ij}-a^s_{b,ij})^2

    As in the official code the normaliser :math:`\|f_i\|` is treated as a constant in the backward
    pass (detached), which changes the gradient but not the value; the official code also casts
    to float32, this one keeps the input dtype. winycg/CIRKD ``CriterionStructuralKD`` differs
    (fixed 2x2 pooling, normaliser not detached, mean instead of ``/N'^2/B``).

    Args:
        scale: pooling patch size as a fraction of the feature size (0.5: 2x2 patches of nodes).
        loss_weight: ``w`` (:math:`\lambda_{pa}`, 1 in the paper).

    Shapes: ``feat_student`` ``(B, Cs, H, W)``, ``feat_teacher`` ``(B, Ct, H, W)`` (widths may
    differ); returns a scalar. Checked against irfanICMLL/structure_knowledge_distillation
    ``utils/criterion.py`` ``CriterionPairWiseforWholeFeatAfterPool`` / ``utils/utils.py``
    ``sim_dis_compute`` (spec ``skd_pa``). A patch size that rounds to 0 is raised to 1.
    """

    def __init__(self, scale: float = 0.5, loss_weight: float = 1.0):
        super().__init__()
        self.scale = scale
        self.loss_weight = loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_dense(feat_student, feat_teacher, "features")
        teacher = feat_teacher.detach()
        h, w = teacher.shape[2:]
        kernel = (max(1, int(h * self.scale)), max(1, int(w * self.scale)))
        student = F.max_pool2d(feat_student, kernel, kernel, ceil_mode=True)
        teacher = F.max_pool2d(teacher, kernel, kernel, ceil_mode=True)
        diff = _pixel_similarity(teacher, detach_norm=True) - _pixel_similarity(
            student, detach_norm=True
        )
        nodes = teacher.shape[2] * teacher.shape[3]
        return self.loss_weight * diff.pow(2).sum() / nodes**2 / teacher.shape[0]


# ----------------------------------------------------------------------------------------------
# IFVD (Wang et al., ECCV 2020)
# ----------------------------------------------------------------------------------------------


@register("ifvd", paper="wang2020intra", family="similarity", evidence="reference")
class IFVD(DistillationLoss):
    r"""*Intra-class Feature Variation Distillation for Semantic Segmentation* (Wang et al., ECCV
    2020; catalogue id ``wang2020intra``).

    Labels are nearest-resized to the feature size. For each image and class :math:`k` the
    prototype is :math:`c_k = \sum_{i\in k} f_i / (|k| + 10^{-6})`; every pixel of class
    :math:`k` gets :math:`c_{y_i}` (pixels of no class keep their own feature) and the intra-class
    feature variation map is :math:`m_i = \cos(f_i, c_{y_i})` (eps :math:`10^{-8}`):

    .. math:: \mathcal{L}_{ifv} = \frac{w}{BHW}\sum_{b,i}(m^s_{b,i} - m^t_{b,i})^2

    Args:
        num_classes: ``K``; labels outside ``[0, K)`` (e.g. 255 = ignore) belong to no class.
        loss_weight: ``w`` (:math:`\lambda_{ifv}`; 200 in the official Cityscapes runs).

    Shapes: ``feat_student`` ``(B, Cs, h, w)``, ``feat_teacher`` ``(B, Ct, h, w)``, ``target``
    ``(B, H, W)`` int64; returns a scalar. Checked against YukangWang/IFVD ``utils/criterion.py``
    ``CriterionIFV`` (and winycg/CIRKD ``losses/ifvd.py``); the class loop is vectorised with
    one-hot masks (the masks are disjoint, so the result is identical).
    """

    def __init__(self, num_classes: int = 5, loss_weight: float = 1.0):
        super().__init__()
        self.num_classes = num_classes
        self.loss_weight = loss_weight

    def _variation_map(self, feat: Tensor, masks: Tensor) -> Tensor:
        prototypes = _class_prototypes(feat, masks)
        centres = feat * (1 - masks.sum(dim=1, keepdim=True)) + torch.einsum(
            "bkhw,bkc->bchw", masks, prototypes
        )
        return F.cosine_similarity(feat, centres, dim=1, eps=1e-8)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor, target: Tensor) -> Tensor:
        _check_dense(feat_student, feat_teacher, "features")
        _check_target(target, feat_student.shape[0])
        labels = _resize_labels(target, feat_student.shape[2:])
        masks = _class_masks(labels, self.num_classes, feat_student.dtype)
        m_s = self._variation_map(feat_student, masks)
        m_t = self._variation_map(feat_teacher.detach(), masks)
        return self.loss_weight * F.mse_loss(m_s, m_t)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _feature_target_example(batch, dtype, generator, large, classes=5)


# ----------------------------------------------------------------------------------------------
# CIRKD (Yang et al., CVPR 2022)
# ----------------------------------------------------------------------------------------------


@register("cirkd", paper="yang2022cross", family="similarity", evidence="reference")
class CIRKD(DistillationLoss):
    r"""*Cross-Image Relational Knowledge Distillation for Semantic Segmentation* (Yang et al.,
    CVPR 2022; catalogue id ``yang2022cross``).

    **Mini-batch pixel-to-pixel term (always on; what the reference cases check).** Features are
    L2-normalised over channels; for every ordered pair of images :math:`(i, j)` of the batch
    (including :math:`i=j`) the :math:`HW\times HW` similarity :math:`S_{ij} = \hat F_i^\top
    \hat F_j` is row-softmaxed at temperature :math:`\tau`:

    .. math:: \mathcal{L}_{batch} = \frac{1}{B^2}\sum_{i,j}\frac{1}{HW}\sum_{m}
        \mathrm{KL}\big(\sigma(S^t_{ij,m}/\tau)\,\|\,\sigma(S^s_{ij,m}/\tau)\big)

    Maps of at least 256x256 are first 4x4 average-pooled, as in the official code.

    **Memory-based terms (off by default: ``memory_pixel_weight = memory_region_weight = 0``).**
    The paper adds pixel-to-pixel and pixel-to-region distillation against class-wise queues of
    teacher pixel embeddings and teacher region (per-image class mean) embeddings:
    :math:`\mathcal{L}_{mem} = \tau_{kd}^2\,\mathrm{KL}\big(\sigma(\hat t^\top Q/(\tau\tau_{kd}))
    \,\|\,\sigma(\hat s^\top Q/(\tau\tau_{kd}))\big)`, averaged over labelled anchor pixels, with
    :math:`\hat s` the (projected) student embedding and :math:`Q` a random sample of
    ``contrast_size // num_classes + 1`` entries per class of the queue. Enabling them needs
    ``num_classes``, ``teacher_channels`` (the queue width) and ``target``. State lives in the
    buffers ``pixel_queue``/``region_queue`` (random unit vectors at init, as official) and their
    pointers; they are updated (no gradient) only in training mode, before sampling, as official.
    Randomness uses torch's global RNG (seed with ``torch.manual_seed``); in eval mode the sample is
    the first entries of each queue and nothing is enqueued. With the memory on the loss depends on
    the order of past batches (not batch-order invariant). Differences from winycg/CIRKD
    ``losses/cirkd_memory.py``: the pixel queue is a plain ring buffer (official: a write that would
    pass the end goes to the last slots and resets the pointer); the pixels enqueued for a class are
    drawn among that class's pixels (official code indexes the whole image with a permutation of
    the class count, an apparent bug); there is no all-gather across processes.

    Args:
        temperature: :math:`\tau`, similarity softmax temperature (0.1); also the memory terms'
            contrast temperature.
        loss_weight: weight of the mini-batch term (``lambda_minibatch_pixel``, 1).
        memory_pixel_weight: weight of the memory pixel-to-pixel term (official runs: 0.1).
        memory_region_weight: weight of the memory pixel-to-region term (official runs: 0.1).
        num_classes: number of classes (memory terms only).
        student_channels, teacher_channels: with both given (memory terms only), the student
            embedding passes a projection head conv1x1 -> BatchNorm -> ReLU -> conv1x1 (bias-free
            convs, PyTorch default init) to the teacher width, as official (SyncBatchNorm there).
        pixel_memory_size, region_memory_size: queue lengths per class (20000, 2000).
        pixel_contrast_size, region_contrast_size: total entries sampled per step (4096, 1024).
        contrast_kd_temperature: :math:`\tau_{kd}` of the memory KL terms (1.0).
        pixel_update_freq: pixels enqueued per class per image (16).
        ignore_index: label of unlabelled pixels (255).

    Shapes: ``feat_student`` ``(B, Cs, H, W)``, ``feat_teacher`` ``(B, Ct, H, W)`` (widths may
    differ), optional ``target`` ``(B, H', W')``; returns a scalar. Checked against winycg/CIRKD
    ``losses/cirkd_mini_batch.py`` ``CriterionMiniBatchCrossImagePair`` (reference cases
    ``cirkd``; the official float32 accumulator rounds the value, hence rtol 1e-5 there). The pair
    loop is one batched einsum, so memory grows as :math:`B^2 (HW)^2`.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        loss_weight: float = 1.0,
        memory_pixel_weight: float = 0.0,
        memory_region_weight: float = 0.0,
        num_classes: int | None = None,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        pixel_memory_size: int = 20000,
        region_memory_size: int = 2000,
        pixel_contrast_size: int = 4096,
        region_contrast_size: int = 1024,
        contrast_kd_temperature: float = 1.0,
        pixel_update_freq: int = 16,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.memory_pixel_weight = memory_pixel_weight
        self.memory_region_weight = memory_region_weight
        self.contrast_kd_temperature = contrast_kd_temperature
        self.pixel_update_freq = pixel_update_freq
        self.ignore_index = ignore_index
        self.use_memory = memory_pixel_weight != 0 or memory_region_weight != 0
        self.project_head: nn.Module = nn.Identity()
        if not self.use_memory:
            return
        if num_classes is None or teacher_channels is None:
            raise ValueError("the CIRKD memory terms need num_classes and teacher_channels")
        self.num_classes = num_classes
        self.pixel_contrast_per_class = pixel_contrast_size // num_classes + 1
        self.region_contrast_per_class = region_contrast_size // num_classes + 1
        if student_channels is not None:
            self.project_head = nn.Sequential(
                nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                nn.BatchNorm2d(teacher_channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(teacher_channels, teacher_channels, 1, bias=False),
            )
        dim = teacher_channels
        self.register_buffer(
            "pixel_queue", F.normalize(torch.randn(num_classes, pixel_memory_size, dim), dim=2)
        )
        self.register_buffer("pixel_ptr", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer(
            "region_queue", F.normalize(torch.randn(num_classes, region_memory_size, dim), dim=2)
        )
        self.register_buffer("region_ptr", torch.zeros(num_classes, dtype=torch.long))

    def _minibatch(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        h, w = feat_student.shape[2:]
        if h >= 256 and w >= 256:
            feat_student = F.avg_pool2d(feat_student, 4, 4, ceil_mode=True)
            feat_teacher = F.avg_pool2d(feat_teacher, 4, 4, ceil_mode=True)
        b, _, h, w = feat_student.shape
        # all pixels of all images as rows: (B*HW, C); S[i, m, j, n] = <f_im, f_jn>
        s = F.normalize(feat_student, p=2, dim=1).flatten(2).transpose(1, 2).reshape(b * h * w, -1)
        t = F.normalize(feat_teacher, p=2, dim=1).flatten(2).transpose(1, 2).reshape(b * h * w, -1)
        sim_s = (s @ s.T / self.temperature).view(b, h * w, b, h * w)
        sim_t = (t @ t.T / self.temperature).view(b, h * w, b, h * w)
        kl = _kl_rows(F.log_softmax(sim_s, dim=-1), F.log_softmax(sim_t, dim=-1), dim=-1)
        return kl.sum() / (b * b * h * w)

    @torch.no_grad()
    def _enqueue(self, teacher: Tensor, labels: Tensor) -> None:
        """Push per-image class means and a few random pixels of each class into the queues."""
        b, d = teacher.shape[:2]
        k = self.num_classes
        flat = teacher.flatten(2).transpose(1, 2)  # (B, HW, D)
        masks = _class_masks(labels, k, teacher.dtype).flatten(2)  # (B, K, HW)
        counts = masks.sum(dim=2)
        present = counts > 0
        # regions: one normalised class mean per (image, class present), in batch order per class
        means = F.normalize(torch.einsum("bkn,bnd->bkd", masks, flat), dim=2)
        rank = present.long().cumsum(dim=0) - 1
        bi, ki = present.nonzero(as_tuple=True)
        slots = (self.region_ptr[ki] + rank[bi, ki]) % self.region_queue.shape[1]
        self.region_queue[ki, slots] = means[bi, ki].to(self.region_queue.dtype)
        self.region_ptr.add_(present.sum(dim=0)).remainder_(self.region_queue.shape[1])
        # pixels: up to pixel_update_freq random pixels of each class of each image
        picks = min(self.pixel_update_freq, flat.shape[1])
        scores = torch.rand(masks.shape, device=teacher.device, dtype=teacher.dtype)
        scores = torch.where(masks > 0, scores, torch.full_like(scores, -1.0))
        values, index = scores.topk(picks, dim=2)  # (B, K, U)
        chosen = values >= 0
        feats = flat[torch.arange(b, device=flat.device)[:, None, None], index]  # (B, K, U, D)
        chosen_k = chosen.permute(1, 0, 2).reshape(k, -1)  # per class, in (image, pick) order
        rank = chosen_k.long().cumsum(dim=1) - 1
        ki, ji = chosen_k.nonzero(as_tuple=True)
        slots = (self.pixel_ptr[ki] + rank[ki, ji]) % self.pixel_queue.shape[1]
        new = F.normalize(feats.permute(1, 0, 2, 3).reshape(k, -1, d)[ki, ji], dim=1)
        self.pixel_queue[ki, slots] = new.to(self.pixel_queue.dtype)
        self.pixel_ptr.add_(chosen_k.sum(dim=1)).remainder_(self.pixel_queue.shape[1])

    def _sample(self, queue: Tensor, per_class: int) -> Tensor:
        size = queue.shape[1]
        if self.training:
            index = torch.randperm(size, device=queue.device)[:per_class]
        else:
            index = torch.arange(min(per_class, size), device=queue.device)
        return queue[:, index].reshape(-1, queue.shape[2])

    def _memory(self, feat_student: Tensor, feat_teacher: Tensor, target: Tensor) -> Tensor:
        teacher = F.normalize(feat_teacher, p=2, dim=1)
        student = F.normalize(self.project_head(feat_student), p=2, dim=1)
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(
                f"memory terms need equal widths after projection: student {tuple(student.shape)}"
                f" vs teacher {tuple(teacher.shape)} (give student_channels)"
            )
        labels = _resize_labels(target, student.shape[2:])
        if self.training:
            self._enqueue(teacher, labels)
        valid = ((labels >= 0) & (labels < self.num_classes)).flatten()
        s = student.permute(0, 2, 3, 1).reshape(-1, student.shape[1])[valid]
        t = teacher.permute(0, 2, 3, 1).reshape(-1, teacher.shape[1])[valid]
        if s.shape[0] == 0:
            return 0.0 * student.pow(2).mean()
        tau, tkd = self.temperature, self.contrast_kd_temperature
        total = student.new_zeros(())
        for weight, queue, per_class in (
            (self.memory_pixel_weight, self.pixel_queue, self.pixel_contrast_per_class),
            (self.memory_region_weight, self.region_queue, self.region_contrast_per_class),
        ):
            contrast = self._sample(queue, per_class).to(s.dtype)
            log_p_s = F.log_softmax(s @ contrast.T / tau / tkd, dim=1)
            log_p_t = F.log_softmax(t @ contrast.T / tau / tkd, dim=1)
            total = total + weight * tkd**2 * _kl_rows(log_p_s, log_p_t, dim=1).mean()
        return total

    def forward(
        self, feat_student: Tensor, feat_teacher: Tensor, target: Tensor | None = None
    ) -> Tensor:
        _check_dense(feat_student, feat_teacher, "features")
        teacher = feat_teacher.detach()
        loss = self.loss_weight * self._minibatch(feat_student, teacher)
        if self.use_memory:
            if target is None:
                raise ValueError("the CIRKD memory terms need target (B, H, W)")
            _check_target(target, feat_student.shape[0])
            loss = loss + self._memory(feat_student, teacher, target)
        return loss


# ----------------------------------------------------------------------------------------------
# BPKD (Liu et al., WACV 2024)
# ----------------------------------------------------------------------------------------------


@register("bpkd", paper="liu2024bpkd", family="logit", evidence="paper")
class BPKD(DistillationLoss):
    r"""*BPKD: Boundary Privileged Knowledge Distillation for Semantic Segmentation* (Liu et al.,
    WACV 2024; catalogue id ``liu2024bpkd``).

    **Edge mask.** The label map is one-hot encoded (ignored pixels in no class); per class,
    dilation minus erosion with a ``edge_width`` x ``edge_width`` window marks a band around
    every class boundary (the image border is not a boundary); the binary map is average-pooled
    to the logit resolution, giving a soft mask :math:`M \in [0,1]^{B\times K\times h\times w}`.

    **Edge loss** (pre-mask, pixel KL over classes, post-mask):

    .. math:: \mathcal{L}_E = \alpha T^2\,\frac{\sum_{b,k,i} M_{b,k,i}\,
        \mathrm{KL}\big(\sigma(M_{b,:,i}\odot z^t_{b,:,i}/T)\,\|\,
        \sigma(M_{b,:,i}\odot z^s_{b,:,i}/T)\big)}{\sum_{b,k,i} M_{b,k,i}}

    **Body loss** (channel-wise distillation on the body logits :math:`\bar z = (1-M)\odot z`,
    softmax over the :math:`hw` positions of each class map):

    .. math:: \mathcal{L}_B = \frac{T^2}{BK}\sum_{b,k}\mathrm{KL}\big(\sigma(\bar z^t_{b,k}/T)
        \,\|\,\sigma(\bar z^s_{b,k}/T)\big), \qquad
        \mathcal{L} = w\,(\lambda_B \mathcal{L}_B + \lambda_E \mathcal{L}_E)

    The official repository (AkideLiu/BPKD) released evaluation code only, so this follows the
    paper's Fig. 3 pipeline (edge detection on the one-hot ground truth, dilation - erosion,
    AvgPool2D, pre-mask filtering, softmax over classes, KL, sum over classes, repeat, post-mask
    filtering, sum over space, :math:`\alpha`, divide by the mask pixels) and the channel-wise
    (CWD) body term. Inferred, not checked against code: whether :math:`T^2` enters the edge
    term, the normalisation by the total mask mass, and the default weights (the paper's tuned
    :math:`\lambda_B, \lambda_E, \alpha` and edge width could not be confirmed, so they default
    to 1, 1, 1 and 3).

    Args:
        temperature: ``T`` of both terms (4, the CWD setting BPKD builds on).
        edge_width: odd window size of the dilation/erosion (boundary band width, 3).
        edge_alpha: :math:`\alpha`, scale of the edge term.
        body_weight, edge_weight: :math:`\lambda_B`, :math:`\lambda_E`.
        ignore_index: label of unlabelled pixels (255); they get no edge.
        loss_weight: ``w``.

    Shapes: ``logits_student``, ``logits_teacher`` ``(B, K, h, w)``; ``target`` ``(B, H, W)``
    int64 at any resolution (usually the image's); returns a scalar.
    """

    def __init__(
        self,
        temperature: float = 4.0,
        edge_width: int = 3,
        edge_alpha: float = 1.0,
        body_weight: float = 1.0,
        edge_weight: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if edge_width < 1 or edge_width % 2 == 0:
            raise ValueError(f"edge_width must be a positive odd number, got {edge_width}")
        self.temperature = temperature
        self.edge_width = edge_width
        self.edge_alpha = edge_alpha
        self.body_weight = body_weight
        self.edge_weight = edge_weight
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight

    def edge_mask(self, target: Tensor, num_classes: int, size, dtype) -> Tensor:
        """Soft per-class boundary mask ``(B, K, h, w)`` from labels ``(B, H, W)``."""
        labels = target.masked_fill(target == self.ignore_index, -1)
        onehot = _class_masks(labels, num_classes, dtype)
        k, pad = self.edge_width, self.edge_width // 2
        dilated = F.max_pool2d(onehot, k, 1, pad)
        eroded = -F.max_pool2d(-onehot, k, 1, pad)
        valid = ((labels >= 0) & (labels < num_classes))[:, None].to(dtype)
        return F.adaptive_avg_pool2d((dilated - eroded) * valid, tuple(size))

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        _check_target(target, logits_student.shape[0])
        b, k, h, w = logits_student.shape
        t = self.temperature
        teacher = logits_teacher.detach()
        mask = self.edge_mask(target, k, (h, w), logits_student.dtype)
        # edge: pixel-wise KL over classes on masked logits, re-weighted by the mask
        kl = _kl_rows(
            F.log_softmax(logits_student * mask / t, dim=1),
            F.log_softmax(teacher * mask / t, dim=1),
            dim=1,
        )  # (B, h, w)
        edge = (mask * kl[:, None]).sum() / mask.sum().clamp_min(1e-12)
        edge = self.edge_alpha * t * t * edge
        # body: channel-wise (spatial softmax) KL on the body logits
        body_s = (logits_student * (1 - mask)).flatten(2) / t
        body_t = (teacher * (1 - mask)).flatten(2) / t
        body = _kl_rows(F.log_softmax(body_s, dim=2), F.log_softmax(body_t, dim=2), dim=2)
        body = t * t * body.sum() / (b * k)
        return self.loss_weight * (self.body_weight * body + self.edge_weight * edge)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = _seg_logits_example(batch, dtype, generator, large)
        n, k, h, w = out["logits_student"].shape
        out["target"] = _seg_target(n, (2 * h, 2 * w), k, generator)
        return out


# ----------------------------------------------------------------------------------------------
# Methods without official code: implemented from the papers' descriptions
# ----------------------------------------------------------------------------------------------


@register("fast_seg_kd", paper="xie2018improving", family="similarity", evidence="paper")
class FastSegKD(DistillationLoss):
    r"""Zero- and first-order knowledge of *Improving Fast Segmentation With Teacher-student
    Learning* (Xie et al., BMVC 2018; catalogue id ``xie2018improving``).

    Zero-order knowledge is the teacher's per-pixel class distribution :math:`p_i = \sigma(z_i/T)`;
    first-order knowledge is the relation between each pixel and its 8 neighbours, here the
    cosine similarity :math:`a_{ij} = \hat x_i^\top \hat x_j` of their feature vectors
    :math:`x` (the features when given, else the class probabilities). With :math:`\mathcal{P}`
    the (image, pixel, in-image 8-neighbour) pairs,

    .. math:: \mathcal{L} = w\Big(\lambda_0\,\frac{T^2}{BHW}\sum_{b,i}\mathrm{KL}(p^t_{b,i}\,\|\,
        p^s_{b,i}) + \lambda_1\,\frac{1}{|\mathcal{P}|}\sum_{(b,i,j)\in\mathcal{P}}
        (a^s_{b,ij} - a^t_{b,ij})^2\Big)

    The paper applies the same losses on unlabelled auxiliary images too (just feed them). No
    official code, so inferred from the paper's description: the cosine similarity as the local
    relation (the later SKD paper describes this method as pair-wise distillation restricted to
    the 8-neighbourhood), the :math:`T^2` factor and the mean reductions.

    Args:
        temperature: ``T`` of the softmax (1).
        zero_order_weight: :math:`\lambda_0`.
        first_order_weight: :math:`\lambda_1`.
        loss_weight: ``w``.

    Shapes: ``logits_student``, ``logits_teacher`` ``(B, K, H, W)``; optional ``feat_student``
    ``(B, Cs, h, w)``, ``feat_teacher`` ``(B, Ct, h, w)`` (widths may differ); returns a scalar.
    Each unordered neighbour pair appears twice in :math:`\mathcal{P}` with the same value, so the
    mean is taken over the four offsets right, down, down-right and down-left.
    """

    _OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))

    def __init__(
        self,
        temperature: float = 1.0,
        zero_order_weight: float = 1.0,
        first_order_weight: float = 1.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.zero_order_weight = zero_order_weight
        self.first_order_weight = first_order_weight
        self.loss_weight = loss_weight

    @classmethod
    def _neighbour_similarities(cls, x: Tensor) -> list[Tensor]:
        """Cosine similarity of each pixel with its in-image neighbour at each offset."""
        x = F.normalize(x, dim=1)
        h, w = x.shape[2:]
        out = []
        for dy, dx in cls._OFFSETS:
            here = x[:, :, : h - dy, max(0, -dx) : w - max(0, dx)]
            there = x[:, :, dy:, max(0, dx) : w - max(0, -dx)]
            out.append((here * there).sum(dim=1).flatten())
        return out

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        feat_student: Tensor | None = None,
        feat_teacher: Tensor | None = None,
    ) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        log_p_s = F.log_softmax(logits_student / t, dim=1)
        log_p_t = F.log_softmax(logits_teacher.detach() / t, dim=1)
        zero = t * t * _kl_rows(log_p_s, log_p_t, dim=1).mean()
        if feat_student is not None and feat_teacher is not None:
            _check_dense(feat_student, feat_teacher, "features")
            x_s, x_t = feat_student, feat_teacher.detach()
        else:
            x_s, x_t = log_p_s.exp(), log_p_t.exp()
        a_s = torch.cat(self._neighbour_similarities(x_s))
        a_t = torch.cat(self._neighbour_similarities(x_t))
        first = (a_s - a_t).pow(2).mean() if a_s.numel() else zero.new_zeros(())
        return self.loss_weight * (self.zero_order_weight * zero + self.first_order_weight * first)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = _seg_logits_example(batch, dtype, generator, large)
        out.update(feature_example(batch, dtype, generator, large))
        return out


@register("dsd", paper="feng2021double", family="similarity", evidence="reference")
class DSD(DistillationLoss):
    r"""*Double Similarity Distillation for Semantic Image Segmentation* (Feng et al., IEEE TIP
    2021; catalogue id ``feng2021double``).

    **Pixel-wise similarity distillation (PSD)** on residual attention maps across layers: with
    :math:`a_l = \mathrm{norm}(\frac{1}{C_l}\sum_c f_{l,c}^2)` (flattened over positions, L2
    normalised) and :math:`r_{nm} = \mathrm{norm}(a_m - a_n)` for every pair of layers
    :math:`n < m` (:math:`P` pairs),

    .. math:: \mathcal{L}_{PSD} = \frac{1}{P}\sum_{n<m}\frac{1}{B\,HW}\|r^s_{nm} - r^t_{nm}\|_2^2

    **Category-wise similarity distillation (CSD)** on the class score map :math:`z` (the last
    list item), 2x2 average-pooled: :math:`q_k = \sigma(z_k/\tau)` over positions and the class
    correlation :math:`G = q q^\top \in \mathbb{R}^{K\times K}`:

    .. math:: \mathcal{L}_{CSD} = \frac{1}{BK^2}\|G^s - G^t\|_F^2, \qquad
        \mathcal{L} = w(\lambda_{p}\mathcal{L}_{PSD} + \lambda_{c}\mathcal{L}_{CSD})

    The authors did not release code; this follows the re-implementation in winycg/CIRKD
    ``losses/dsd.py`` (``CriterionDoubleSimKD``, by the CIRKD authors), whose training script
    passes [backbone feature, head feature, logits] as the lists and weights PSD by 1000 and CSD
    by 10 (the defaults here). Attention maps of layers with a different spatial size are
    bilinearly resized to the first layer's size (CIRKD assumes equal sizes). The paper's exact
    PSD form may differ from that re-implementation.

    Args:
        temperature: :math:`\tau` of the CSD spatial softmax (4).
        psd_weight: :math:`\lambda_p` (1000).
        csd_weight: :math:`\lambda_c` (10).
        loss_weight: ``w``.

    Shapes: ``feats_student``, ``feats_teacher``: lists of ``(B, C_l, H_l, W_l)`` maps, the last
    being the ``(B, K, h, w)`` class score map; student and teacher widths may differ except for
    the last item; returns a scalar.
    """

    def __init__(
        self,
        temperature: float = 4.0,
        psd_weight: float = 1000.0,
        csd_weight: float = 10.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.psd_weight = psd_weight
        self.csd_weight = csd_weight
        self.loss_weight = loss_weight

    @staticmethod
    def _attentions(feats: Sequence[Tensor]) -> list[Tensor]:
        size = feats[0].shape[2:]
        maps = []
        for f in feats:
            a = f.pow(2).mean(dim=1, keepdim=True)
            if a.shape[2:] != size:
                a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            maps.append(F.normalize(a.flatten(1), dim=1))
        return maps

    def _psd(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        a_s, a_t = self._attentions(feats_student), self._attentions(feats_teacher)
        n = len(a_s)
        pairs = torch.triu_indices(n, n, offset=1).tolist()
        if not pairs[0]:
            return a_s[0].new_zeros(())
        stack_s, stack_t = torch.stack(a_s), torch.stack(a_t)  # (L, B, HW)
        r_s = F.normalize(stack_s[pairs[1]] - stack_s[pairs[0]], dim=2)
        r_t = F.normalize(stack_t[pairs[1]] - stack_t[pairs[0]], dim=2)
        return (r_s - r_t).pow(2).mean()

    def _csd(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        def correlation(z: Tensor) -> Tensor:
            q = F.softmax(F.avg_pool2d(z, 2, 2, ceil_mode=True).flatten(2) / self.temperature, 2)
            return q @ q.transpose(1, 2)

        return (correlation(logits_student) - correlation(logits_teacher)).pow(2).mean()

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        check_same_length(feats_student, feats_teacher)
        if not feats_student:
            raise ValueError("dsd needs at least one map (the class score map)")
        for s, t in zip(feats_student[:-1], feats_teacher[:-1], strict=True):
            _check_dense(s, t, "features")
        check_same_shape(feats_student[-1], feats_teacher[-1], "logits")
        teachers = [t.detach() for t in feats_teacher]
        psd = self._psd(feats_student, teachers)
        csd = self._csd(feats_student[-1], teachers[-1])
        return self.loss_weight * (self.psd_weight * psd + self.csd_weight * csd)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = feature_example(batch, dtype, generator, large, layers=2)
        n, _, h, w = out["feats_student"][0].shape
        classes = 19 if large else 5
        for role, scale in (("student", 1), ("teacher", 2)):
            z = torch.randn(n, classes, h, w, generator=generator, dtype=dtype) * scale
            out[f"feats_{role}"].append(z)
        return out


@register("idd", paper="zhang2022distilling", family="similarity", evidence="paper")
class IDD(DistillationLoss):
    r"""Inter-class distance distillation of *Distilling Inter-Class Distance for Semantic
    Segmentation* (Zhang et al., IJCAI 2022; catalogue id ``zhang2022distilling``).

    Labels are nearest-resized to the feature size; :math:`v_k` is the mean feature of class
    :math:`k` in an image (as in IFVD), :math:`e_{kl} = \|v_k - v_l\|_2` the distance between two
    class centres, and :math:`\mathcal{P}` the (image, class pair :math:`k<l`) entries where both
    classes occur in the image:

    .. math:: \mathcal{L} = \frac{w}{|\mathcal{P}|}\sum_{(b,k,l)\in\mathcal{P}}
        (e^t_{b,kl} - e^s_{b,kl})^2

    The student learns the teacher's geometry of the class centres (how far apart classes are in
    feature space) rather than the features themselves. No official code: the Euclidean distance,
    the per-image centres from ground-truth labels, the restriction to classes present and the
    mean over pairs are inferred from the paper's description. The paper's second component,
    position information distillation (a separately trained position-encoding network whose
    predictions are matched), is not included: its network and training are not specified
    precisely enough to reproduce.

    Args:
        num_classes: ``K``; labels outside ``[0, K)`` (e.g. 255) belong to no class (19).
        student_channels, teacher_channels: with both given, a 1x1 convolution (PyTorch default
            init) maps the student features to the teacher width first (the distances are
            comparable without it, so none is applied by default).
        loss_weight: ``w``.

    Shapes: ``feat_student`` ``(B, Cs, h, w)``, ``feat_teacher`` ``(B, Ct, h, w)``, ``target``
    ``(B, H, W)`` int64; returns a scalar (zero when no image has two classes).
    """

    def __init__(
        self,
        num_classes: int = 19,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.connector: nn.Module = nn.Identity()
        if student_channels is not None and teacher_channels is not None:
            self.connector = nn.Conv2d(student_channels, teacher_channels, 1)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor, target: Tensor) -> Tensor:
        _check_dense(feat_student, feat_teacher, "features")
        _check_target(target, feat_student.shape[0])
        student = self.connector(feat_student)
        labels = _resize_labels(target, student.shape[2:])
        masks = _class_masks(labels, self.num_classes, student.dtype)
        present = masks.sum(dim=(2, 3)) > 0  # (B, K)
        first, second = torch.triu_indices(
            self.num_classes, self.num_classes, offset=1, device=labels.device
        )
        valid = present[:, first] & present[:, second]  # (B, P)
        if not bool(valid.any()):
            return 0.0 * student.sum()

        def distances(feat: Tensor) -> Tensor:
            centres = _class_prototypes(feat, masks)
            squared = (centres[:, first] - centres[:, second]).pow(2).sum(dim=2)
            return torch.where(valid, squared, torch.ones_like(squared)).sqrt()

        diff = (distances(feat_teacher.detach()) - distances(student)).pow(2)
        return self.loss_weight * diff[valid].mean()

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _feature_target_example(batch, dtype, generator, large, classes=5)


@register("ccd", paper="wang2023channel", family="similarity", evidence="paper")
class CCD(DistillationLoss):
    r"""Channel correlation distillation of *Channel Correlation Distillation for Compact Semantic
    Segmentation* (Wang et al., IJPRAI 2023; catalogue id ``wang2023channel``).

    With each channel map :math:`f_c` flattened over positions and L2 normalised,
    :math:`G_{cd} = \hat f_c^\top \hat f_d` is the :math:`C\times C` channel correlation (how
    likely two channels respond to the same categories):

    .. math:: \mathcal{L} = \frac{w}{BC^2}\sum_b\|G^s_b - G^t_b\|_F^2

    No official code: the cosine (per-channel normalised) correlation and the mean squared
    distance are inferred from the paper's description. The paper also trains multi-scale
    discriminators adversarially on the segmentation outputs; that adversarial game (its own
    networks and optimiser) is a training scheme, not part of this distillation term.

    Args:
        student_channels, teacher_channels: with both given, a 1x1 convolution (PyTorch default
            init) maps the student features to the teacher width; without them the widths must
            agree.
        loss_weight: ``w``.

    Shapes: ``feat_student`` ``(B, C, H, W)``, ``feat_teacher`` ``(B, C, H', W')`` (spatial sizes
    may differ: the correlation is over channels); returns a scalar.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.connector: nn.Module = nn.Identity()
        if student_channels is not None and teacher_channels is not None:
            self.connector = nn.Conv2d(student_channels, teacher_channels, 1)

    @staticmethod
    def _correlation(feat: Tensor) -> Tensor:
        flat = F.normalize(feat.flatten(2), dim=2)
        return flat @ flat.transpose(1, 2)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        if feat_student.dim() != 4 or feat_student.shape[0] != feat_teacher.shape[0]:
            raise ValueError(
                f"features shapes differ: student {tuple(feat_student.shape)} vs teacher "
                f"{tuple(feat_teacher.shape)}"
            )
        student = self.connector(feat_student)
        if student.shape[:2] != feat_teacher.shape[:2]:
            raise ValueError(
                f"channel counts differ: student {tuple(student.shape)} vs teacher "
                f"{tuple(feat_teacher.shape)} (give student_channels and teacher_channels)"
            )
        diff = self._correlation(student) - self._correlation(feat_teacher.detach())
        return self.loss_weight * diff.pow(2).mean()


@register("prrd", paper="wang2023prrd", family="similarity", evidence="paper")
class PRRD(DistillationLoss):
    r"""*PRRD: Pixel-Region Relation Distillation For Efficient Semantic Segmentation* (Wang et
    al., ICASSP 2023; catalogue id ``wang2023prrd``).

    Regions at several scales come from pyramid pooling (adaptive average pooling of the
    L2-normalised features into :math:`s\times s` bins, :math:`s \in` ``bins``); the
    pixel-region relation of pixel :math:`i` at scale :math:`s` is the softmax over that scale's
    regions of the cosine similarities, :math:`P^s_i = \sigma(\hat f_i^\top \hat r^s / \tau)`:

    .. math:: \mathcal{L} = \frac{w}{|S|}\sum_{s\in S}\frac{1}{BHW}\sum_{b,i}
        \mathrm{KL}\big(P^{s,t}_{b,i}\,\|\,P^{s,s}_{b,i}\big)

    The student learns how each of its pixels relates to the image's multi-scale context. No
    official code; the paper is a 4-page abstract-level description. Inferred: PSPNet bins
    (1, 2, 3, 6), cosine relations with a softmax over the regions of each scale (the
    pixel-region relation of OCRNet), KL matching at temperature 0.1 (CIRKD's contrast setting)
    and the mean reductions.

    Args:
        bins: pyramid pooling output sizes.
        temperature: :math:`\tau` of the relation softmax (0.1).
        loss_weight: ``w``.

    Shapes: ``feat_student`` ``(B, Cs, H, W)``, ``feat_teacher`` ``(B, Ct, H, W)`` (widths may
    differ); returns a scalar.
    """

    def __init__(
        self, bins: Sequence[int] = (1, 2, 3, 6), temperature: float = 0.1, loss_weight: float = 1.0
    ):
        super().__init__()
        self.bins = tuple(bins)
        self.temperature = temperature
        self.loss_weight = loss_weight

    def _relations(self, feat: Tensor) -> list[Tensor]:
        f = F.normalize(feat, dim=1)
        pixels = f.flatten(2).transpose(1, 2)  # (B, HW, C)
        out = []
        for s in self.bins:
            regions = F.normalize(F.adaptive_avg_pool2d(f, s).flatten(2), dim=1)  # (B, C, s*s)
            out.append(F.log_softmax(pixels @ regions / self.temperature, dim=2))
        return out

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_dense(feat_student, feat_teacher, "features")
        rel_s = self._relations(feat_student)
        rel_t = self._relations(feat_teacher.detach())
        kls = [_kl_rows(s, t, dim=2).mean() for s, t in zip(rel_s, rel_t, strict=True)]
        return self.loss_weight * torch.stack(kls).mean()
