"""Scale Decoupled Distillation with KD (Wei et al., CVPR 2024; ``wei2024scaled``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import dkd_rows
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def _region_rows(x: Tensor) -> Tensor:
    """SDD layout: ``(B, C, N)`` region logits to ``(N * B, C)`` rows, region-major."""
    b, c, n = x.shape
    return x.permute(2, 0, 1).reshape(n * b, c)


def _sdd_row_weights(rows_t: Tensor, target: Tensor, batch: int) -> Tensor:
    """SDD weights: 2 where a local region's teacher correctness differs from the global region's.

    Rows are region-major (region 0 = the global 1x1 region). Correctness uses the teacher's
    argmax only; global rows always get weight 1.
    """
    n = rows_t.shape[0] // batch
    correct = rows_t.argmax(dim=1) == target.repeat(n)
    global_correct = correct[:batch].repeat(n)
    return 1.0 + (correct != global_correct).to(rows_t.dtype)


def _region_logits_example(batch, dtype, generator, large, regions=5) -> dict[str, Tensor]:
    """SDD inputs: ``(B, C, N)`` region logits (N = 1 + 4 for scales [1, 2]) and labels."""
    n, classes = (256, 100) if large else (batch, 10)
    shape = (n, classes, regions)
    return {
        "logits_student": torch.randn(*shape, generator=generator, dtype=dtype),
        "logits_teacher": torch.randn(*shape, generator=generator, dtype=dtype) * 2,
        "target": torch.randint(0, classes, (n,), generator=generator),
    }


class _SDDBase(DistillationLoss):
    """Shared input handling of the SDD losses: ``(B, C, N)`` region logits and labels."""

    def _rows(self, logits_student, logits_teacher, target):
        check_same_shape(logits_student, logits_teacher, "logits")
        if logits_student.dim() != 3:
            raise ValueError(
                f"SDD expects (B, C, N) region logits, got student {tuple(logits_student.shape)}"
            )
        check_target(logits_student, target)
        n = logits_student.shape[2]
        rows_s = _region_rows(logits_student)
        rows_t = _region_rows(logits_teacher.detach())
        weights = _sdd_row_weights(rows_t, target, logits_student.shape[0])
        return rows_s, rows_t, target.repeat(n), weights

    @staticmethod
    def _finite_or_zero(loss: Tensor) -> Tensor:
        # The official code replaces a NaN/inf total by zero (without a host sync here).
        return torch.where(torch.isfinite(loss), loss, torch.zeros_like(loss))

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _region_logits_example(batch, dtype, generator, large)


@register("sdd_kd", paper="wei2024scaled")
class SDDKD(_SDDBase):
    r"""Scale Decoupled Distillation with KD (Wei et al., CVPR 2024; ``wei2024scaled``).

    The networks also classify SPP-pooled regions of the last feature map (a shared FC, no
    extra parameters), giving ``N`` region logit vectors per image (region 0 = global). KD is
    applied to every region; local regions whose teacher correctness disagrees with the global
    prediction's (complementary knowledge) get weight 2, the others 1:

    .. math:: \mathcal{L} = \frac{w}{NB}\sum_{n,b} \omega_{n,b}\,T^2\,
              \mathrm{KL}\big(\sigma(z^t_{b,:,n}/T)\,\|\,\sigma(z^s_{b,:,n}/T)\big),\quad
              \omega_{n,b} = 1 + \mathbb{1}\big[c_{n,b} \ne c_{0,b}\big],\
              c_{n,b} = \mathbb{1}[\arg\max z^t_{b,:,n} = y_b]

    Args:
        temperature: ``T`` (4.0).
        loss_weight: ``w`` (0.9, cfg ``KD.LOSS.KD_WEIGHT``, with ``CE_WEIGHT`` 0.1).

    Notes:
        Shapes: ``(B, C, N)`` logits (N = 5 for scales [1, 2], 21 for [1, 2, 4]), ``(B,)`` labels;
        scalar. Checked against shicaiwei123/SDD-CVPR2024 ``mdistiller/distillers/KD.py::sdd_kd_loss``:
        NaN KL entries are zeroed and a non-finite total becomes 0, as there.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="shicaiwei123/SDD-CVPR2024@e412036 mdistiller/engine/cfg.py:L61-64 (T 4, CE_WEIGHT 0.1, KD_WEIGHT 0.9), "
            "not overridden by configs/cifar100/sdd_kd/res32x4_res8x4.yaml",
            task_weight=0.1,
            note="the region split --M [1,2,4] (README.md:L41) is the caller's pooling",
        ),
    }

    def __init__(self, temperature: float = 4.0, loss_weight: float = 0.9):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C, N) student logits of the N regions (region 0: the whole
                image).
            logits_teacher: (B, C, N) teacher logits of the N regions (region 0: the whole
                image).
            target: (B,) int64 class labels.

        Returns:
            The scalar loss.
        """
        rows_s, rows_t, _, weights = self._rows(logits_student, logits_teacher, target)
        t = self.temperature
        kl = F.kl_div(
            F.log_softmax(rows_s / t, dim=1),
            F.log_softmax(rows_t / t, dim=1),
            reduction="none",
            log_target=True,
        )
        kl = torch.where(torch.isnan(kl), torch.zeros_like(kl), kl).sum(1)
        loss = (weights * kl).sum() * (t * t) / rows_s.shape[0]
        return self.loss_weight * self._finite_or_zero(loss)


@register("sdd_dkd", paper="wei2024scaled")
class SDDDKD(_SDDBase):
    r"""Scale Decoupled Distillation with DKD (Wei et al., CVPR 2024; ``wei2024scaled``).

    Same region layout and consistent/complementary weights as :class:`SDDKD`, with the DKD
    loss of each region row:

    .. math:: \mathcal{L} = \frac{w\,T^2}{NB}\sum_{n,b} \omega_{n,b}
              \big[\alpha\,\mathrm{TCKD}_{n,b} + \beta\,\mathrm{NCKD}_{n,b}\big]

    Args:
        alpha: TCKD weight (1.0).
        beta: NCKD weight (8.0; CIFAR configs set it per pair).
        temperature: ``T`` (4.0).
        loss_weight: ``w`` (1; ramped in over the official 20 warm-up epochs).

    Notes:
        Shapes: ``(B, C, N)`` logits, ``(B,)`` labels; scalar. Checked against SDD-CVPR2024
        ``mdistiller/distillers/SDD_DKD.py::multi_dkd`` (warm-up and CE left out; a non-finite total
        becomes 0 as there).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="shicaiwei123/SDD-CVPR2024@e412036 mdistiller/engine/cfg.py:L163-167 (CE_WEIGHT 1, ALPHA 1, BETA 8, T 4), "
            "not overridden by configs/cifar100/sdd_dkd/res32x4_res8x4.yaml; train_origin.py:L198 "
            "(--warmup 20)",
            warmup_epochs=20,
        ),
    }

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C, N) student logits of the N regions (region 0: the whole
                image).
            logits_teacher: (B, C, N) teacher logits of the N regions (region 0: the whole
                image).
            target: (B,) int64 class labels.

        Returns:
            The scalar loss.
        """
        rows_s, rows_t, target_r, weights = self._rows(logits_student, logits_teacher, target)
        t = self.temperature
        rows = dkd_rows(rows_s / t, rows_t / t, target_r, self.alpha, self.beta)
        loss = (weights * rows).sum() * (t * t) / rows_s.shape[0]
        return self.loss_weight * self._finite_or_zero(loss)
