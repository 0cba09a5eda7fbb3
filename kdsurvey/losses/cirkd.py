"""*Cross-Image Relational Knowledge Distillation for Semantic Segmentation* (Yang et al., CVPR 2022; catalogue id ``yang2022cross``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._checks import check_dense, check_label_map
from kdsurvey.losses._kl import kl_from_log_probs
from kdsurvey.losses._labels import IGNORE_INDEX, class_masks, resize_labels
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("cirkd", paper="yang2022cross")
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
        memory_pixel_weight: weight of the memory pixel-to-pixel term (0; official runs: 0.1).
        memory_region_weight: weight of the memory pixel-to-region term (0; official runs: 0.1).
        num_classes: number of classes (memory terms only).
        student_channels: the student's embedding width. With ``teacher_channels`` (memory terms
            only), the student embedding passes a projection head conv1x1 -> BatchNorm -> ReLU ->
            conv1x1 (bias-free convs, PyTorch default init) to the teacher width, as official
            (SyncBatchNorm there). ``None`` (default): no head.
        teacher_channels: the teacher's embedding width, the output width of that projection head.
            Give it together with ``student_channels``, or leave both ``None``.
        pixel_memory_size: length of each class's queue of teacher pixel embeddings (20000).
        region_memory_size: length of each class's queue of teacher region embeddings (2000).
        pixel_contrast_size: number of pixel-memory entries sampled per step, over all classes
            (4096).
        region_contrast_size: number of region-memory entries sampled per step, over all classes
            (1024).
        contrast_kd_temperature: :math:`\tau_{kd}` of the memory KL terms (1.0).
        pixel_update_freq: pixels enqueued per class per image (16).
        ignore_index: label of unlabelled pixels (255).

    Notes:
        Shapes: ``feat_student`` ``(B, Cs, H, W)``, ``feat_teacher`` ``(B, Ct, H, W)`` (widths may
        differ), optional ``target`` ``(B, H', W')``; returns a scalar. Checked against winycg/CIRKD
        ``losses/cirkd_mini_batch.py`` ``CriterionMiniBatchCrossImagePair`` (reference cases
        ``cirkd``; the official float32 accumulator rounds the value, hence rtol 1e-5 there). The pair
        loop is one batched einsum, so memory grows as :math:`B^2 (HW)^2`.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "minibatch": Preset(
            source="winycg/CIRKD@05a2753 train_cirkd.py:L81, L84 (--contrast-temperature 0.1, "
            "--lambda-minibatch-pixel 1)",
            note="the mini-batch term alone: the memory terms need num_classes (preset cityscapes)",
        ),
        "cityscapes": Preset(
            source="winycg/CIRKD@05a2753 train_cirkd.py:L74-77, L80, L85-86 (memory sizes, "
            "--contrast-kd-temperature 1, --lambda-memory-pixel 0.1, --lambda-memory-region 0.1)",
            kwargs={"num_classes": 19, "memory_pixel_weight": 0.1, "memory_region_weight": 0.1},
            note="beside pixel-wise KD (--lambda-kd 1, L83), a separate loss here",
        ),
    }

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
        kl = kl_from_log_probs(F.log_softmax(sim_s, dim=-1), F.log_softmax(sim_t, dim=-1), dim=-1)
        return kl.sum() / (b * b * h * w)

    @torch.no_grad()
    def _enqueue(self, teacher: Tensor, labels: Tensor) -> None:
        """Push per-image class means and a few random pixels of each class into the queues."""
        b, d = teacher.shape[:2]
        k = self.num_classes
        flat = teacher.flatten(2).transpose(1, 2)  # (B, HW, D)
        masks = class_masks(labels, k, teacher.dtype).flatten(2)  # (B, K, HW)
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
        labels = resize_labels(target, student.shape[2:])
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
            total = total + weight * tkd**2 * kl_from_log_probs(log_p_s, log_p_t, dim=1).mean()
        return total

    def forward(
        self, feat_student: Tensor, feat_teacher: Tensor, target: Tensor | None = None
    ) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.
            target: (B, H, W) int64 label map (255 = ignored).

        Returns:
            The scalar loss.
        """
        check_dense(feat_student, feat_teacher, "features")
        teacher = feat_teacher.detach()
        loss = self.loss_weight * self._minibatch(feat_student, teacher)
        if self.use_memory:
            if target is None:
                raise ValueError("the CIRKD memory terms need target (B, H, W)")
            check_label_map(target, feat_student.shape[0])
            loss = loss + self._memory(feat_student, teacher, target)
        return loss
