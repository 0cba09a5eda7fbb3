"""FitNets hint loss ("FitNets: Hints for Thin Deep Nets", Romero et al., ICLR 2015; catalogue id ``romero2015fitnets``)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs
from kdsurvey.losses._checks import check_leading_dims, check_same_shape, connector_hint
from kdsurvey.losses._sources import MDISTILLER_CFG, REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("fitnet", paper="romero2015fitnets")
class FitNet(DistillationLoss):
    r"""FitNets hint loss ("FitNets: Hints for Thin Deep Nets", Romero et al., ICLR 2015;
    catalogue id ``romero2015fitnets``).

    .. math:: \mathcal{L} = w\,\frac{1}{BCHW}\,\big\lVert r(F^s) - F^t \big\rVert_2^2

    ``r`` is the learnable regressor mapping the student's guided layer to the teacher's hint layer.

    Args:
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns the regressor ``r``: 1x1 conv (with bias) + BatchNorm + ReLU, PyTorch default
            init (RepDistiller/mdistiller ``ConvReg`` for equal spatial sizes). ``None`` (default):
            no adapter, the student input is already adapted.
        teacher_channels: C_t, the teacher's channel count: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        loss_weight: ``w`` (100: RepDistiller ``-b 100``, mdistiller ``FEAT_WEIGHT``).

    Notes:
        Shapes: ``feat_student`` ``(B, C_s, H, W)`` (``C_s = C_t`` without regressor), ``feat_teacher``
        ``(B, C_t, H, W)``; returns a scalar.

        Checked against HobbitLong/RepDistiller ``distiller_zoo/FitNet.py`` (``HintLoss``: ``MSELoss``,
        mean over all elements) and mdistiller ``distillers/FitNet.py``. The paper writes
        :math:`\tfrac12\lVert\cdot\rVert^2` summed per sample and trains the hint stage separately; the
        official code's mean squared error is used here (the factor is absorbed by ``w``).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{REPDISTILLER_CIFAR}:L7 (-a 0 -b 100); {MDISTILLER_CFG}:L88-90",
            note="the libraries' one-stage recipe; the FitNets paper trains the hint first, in a "
            "separate stage",
        ),
    }

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 100.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.regressor = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            self.regressor = nn.Sequential(
                nn.Conv2d(c_s, c_t, kernel_size=1), nn.BatchNorm2d(c_t), nn.ReLU()
            )

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, feat_teacher)
        if self.regressor is not None:
            feat_student = self.regressor(feat_student)
        hint = (
            ""
            if self.regressor is not None
            else connector_hint(feat_student, feat_teacher, "regressor")
        )
        check_same_shape(feat_student, feat_teacher, "hint feature", hint)
        return self.loss_weight * F.mse_loss(feat_student, feat_teacher.detach())
