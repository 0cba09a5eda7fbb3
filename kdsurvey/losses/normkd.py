"""NormKD: Normalized Logits for KD (2023; ``chi2023normkd``)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import dkd_rows, kl_of_logits
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def norm_temperature(z: Tensor, t_norm: float) -> Tensor:
    """NormKD per-sample temperature ``t_norm * std(z)`` (unbiased, not centred), ``(B, 1)``."""
    return t_norm * z.std(dim=1, keepdim=True)


@register("normkd", paper="chi2023normkd")
class NormKD(DistillationLoss):
    r"""NormKD: Normalized Logits for KD (2023; ``chi2023normkd``).

    Each sample gets its own temperature proportional to the spread of its logits, computed
    separately for student and teacher, so every sample's distribution is softened to a similar
    degree:

    .. math:: T^s_b = \tau\,\mathrm{std}(z^s_b),\quad T^t_b = \tau\,\mathrm{std}(z^t_b),\qquad
              \mathcal{L} = w\,\frac{1}{B}\sum_b (T^t_b)^2\,
              \mathrm{KL}\big(\sigma(z^t_b/T^t_b)\,\|\,\sigma(z^s_b/T^s_b)\big)

    Args:
        t_norm: ``tau``, the normalisation multiplier (2.0, cfg ``TEMPERATURE_NORM``).
        loss_weight: ``w`` (0.9, the official ``KD_WEIGHT``, with ``CE_WEIGHT`` 0.1).

    Notes:
        Shapes: ``(B, C)`` logits; scalar. Checked against gizi1/NormKD
        ``mdistiller/distillers/NormKD.py::kd_loss_normal``: unbiased std, no centring, no epsilon,
        the ``T^2`` factor uses the *teacher's* per-sample temperature, and the gradient flows
        through the student's std.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="gizi1/NormKD@279371b mdistiller/engine/cfg.py:L66-71",
            task_weight=0.1,
        ),
        "imagenet": Preset(
            source="gizi1/NormKD@279371b configs/imagenet/r34_r18/normkd.yaml:L23-27",
            kwargs={"t_norm": 1.0, "loss_weight": 0.5},
            task_weight=0.5,
        ),
    }

    def __init__(self, t_norm: float = 2.0, loss_weight: float = 0.9):
        super().__init__()
        self.t_norm = t_norm
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        z_t = logits_teacher.detach()
        t_s = norm_temperature(logits_student, self.t_norm)
        t_t = norm_temperature(z_t, self.t_norm)
        rows = kl_of_logits(logits_student / t_s, z_t / t_t)
        return self.loss_weight * (rows * t_t.squeeze(1) ** 2).mean()


@register("normkd_dkd", paper="chi2023normkd")
class NormKDDKD(DistillationLoss):
    r"""NormKD per-sample temperatures applied to DKD (``chi2023normkd``).

    .. math:: \mathcal{L} = w\,\frac{1}{B}\sum_b (T^t_b)^2\big[\alpha\,\mathrm{TCKD}_b
              + \beta\,\mathrm{NCKD}_b\big]

    where TCKD/NCKD are the DKD terms (:class:`DKD`) of :math:`z^s_b/T^s_b` and
    :math:`z^t_b/T^t_b`, with :math:`T_b = \tau\,\mathrm{std}(z_b)` as in :class:`NormKD`.

    Args:
        alpha: TCKD weight (4.0, official ResNet32x4 to ResNet8x4).
        beta: NCKD weight (5.0, same pair).
        t_norm: ``tau`` (2.0).
        loss_weight: ``w``.

    Notes:
        Shapes: ``(B, C)`` logits, ``(B,)`` labels; scalar. Checked against gizi1/NormKD
        ``mdistiller/distillers/NormKD_W_DKD.py::dkd_loss_norm`` (warm-up and CE left out).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="gizi1/NormKD@279371b configs/cifar100/NormKD_DKD/res32x4_res8x4.yaml:L18-20 "
            "(ALPHA 4, BETA 5); mdistiller/engine/cfg.py:L73-80 (TEMPERATURE_NORM 2, CE_WEIGHT 1, "
            "WARMUP 20)",
            warmup_epochs=20,
            note="ALPHA and BETA are set per pair (0.5 to 7 and 2 to 8.5)",
        ),
        "imagenet": Preset(
            source="gizi1/NormKD@279371b configs/imagenet/r34_r18/dkd_normkd.yaml:L26-31",
            kwargs={"alpha": 1.0, "beta": 1.0, "t_norm": 0.5},
            warmup_epochs=1,
        ),
    }

    def __init__(
        self, alpha: float = 4.0, beta: float = 5.0, t_norm: float = 2.0, loss_weight: float = 1.0
    ):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.t_norm = t_norm
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            target: (B,) int64 class labels.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        check_target(logits_student, target)
        z_t = logits_teacher.detach()
        t_s = norm_temperature(logits_student, self.t_norm)
        t_t = norm_temperature(z_t, self.t_norm)
        rows = dkd_rows(logits_student / t_s, z_t / t_t, target, self.alpha, self.beta)
        return self.loss_weight * (rows * t_t.squeeze(1) ** 2).mean()
