"""Logit Standardization in KD (Sun et al., CVPR 2024; ``sun2024logit``), on vanilla KD."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import dkd_rows, kl_of_logits
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def _standardize(z: Tensor, eps: float = 1e-7) -> Tensor:
    """Z-score over classes: unbiased std with ``eps`` added (as logit-standardization-KD)."""
    return (z - z.mean(dim=1, keepdim=True)) / (eps + z.std(dim=1, keepdim=True))


@register("lskd", paper="sun2024logit")
class LSKD(DistillationLoss):
    r"""Logit Standardization in KD (Sun et al., CVPR 2024; ``sun2024logit``), on vanilla KD.

    Both logit vectors are Z-scored per sample before the temperature softmax, so the student
    has to match the teacher's logit *relations*, not their range:

    .. math:: \mathcal{Z}(z) = \frac{z - \bar z}{\epsilon + \mathrm{std}(z)},\qquad
              \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\sigma(\mathcal{Z}(z^t_b)/T)\,\|\,\sigma(\mathcal{Z}(z^s_b)/T)\big)

    Args:
        temperature: base temperature ``T`` applied after standardisation (2.0).
        loss_weight: ``w`` (9, the official ``--kd-weight``).

    Notes:
        Shapes: ``(B, C)`` logits; scalar. Checked against sunshangquan/logit-standardization-KD
        ``mdistiller/distillers/KD.py::kd_loss`` (``logit_stand=True``): std is the unbiased
        estimator, ``epsilon = 1e-7`` is added to the std, gradients flow through the student's
        mean and std. The paper writes the standardisation with a plain std.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="sunshangquan/logit-standardization-KD@f6e5aa5 README.md:L57 (--logit-stand --base-temp 2 --kd-weight 9); "
            "mdistiller/engine/cfg.py:L64 (CE_WEIGHT 0.1); tools/train.py:L110-114",
            task_weight=0.1,
        ),
        "imagenet": Preset(
            source="sunshangquan/logit-standardization-KD@f6e5aa5 README.md:L119 (--base-temp 2 --kd-weight 9); "
            "configs/imagenet/r34_r18/kd.yaml:L26 (CE_WEIGHT 1.0)",
        ),
    }

    def __init__(self, temperature: float = 2.0, loss_weight: float = 9.0):
        super().__init__()
        self.temperature = temperature
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
        t = self.temperature
        rows = kl_of_logits(
            _standardize(logits_student) / t, _standardize(logits_teacher.detach()) / t
        )
        return self.loss_weight * t * t * rows.mean()


@register("lskd_dkd", paper="sun2024logit")
class LSKDDKD(DistillationLoss):
    r"""Logit standardisation applied to DKD (Sun et al., CVPR 2024; ``sun2024logit``).

    .. math:: \mathcal{L} = w\,\mathrm{DKD}_{\alpha,\beta,T}
              \big(\mathcal{Z}(z^s), \mathcal{Z}(z^t)\big)

    with :math:`\mathcal{Z}` the per-sample Z-score of :class:`LSKD` and DKD as in :class:`DKD`
    (batch mean, :math:`T^2`, target class masked by ``-1000`` on the scaled logits).

    Args:
        alpha: TCKD weight (1.0).
        beta: NCKD weight (8.0).
        temperature: base temperature (2.0).
        loss_weight: ``w`` (9: the README's ``--kd-weight 9`` scales ``alpha`` and ``beta``).

    Notes:
        Shapes: ``(B, C)`` logits, ``(B,)`` labels; scalar. Checked against
        logit-standardization-KD ``mdistiller/distillers/DKD.py::dkd_loss`` (``logit_stand=True``).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="sunshangquan/logit-standardization-KD@f6e5aa5 README.md:L66 (--logit-stand --base-temp 2 --kd-weight 9); "
            "tools/train.py:L115-118; mdistiller/engine/cfg.py:L164-168 (CE_WEIGHT 1, ALPHA 1, "
            "BETA 8, WARMUP 20)",
            warmup_epochs=20,
        ),
    }

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 2.0,
        loss_weight: float = 9.0,
    ):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.temperature = temperature
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
        t = self.temperature
        z_s = _standardize(logits_student) / t
        z_t = _standardize(logits_teacher.detach()) / t
        rows = dkd_rows(z_s, z_t, target, self.alpha, self.beta)
        return self.loss_weight * t * t * rows.mean()
