"""Activation-boundary distillation ("Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden Neurons", Heo et al., AAAI 2019; catalogue id ``heo2019knowledge``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs, conv_bn_connector
from kdsurvey.losses._checks import check_layers, check_same_shape
from kdsurvey.losses.base import DistillationLoss, layers_example
from kdsurvey.losses.registry import register


def _layer_weights(n: int) -> list[float]:
    """Deepest layer 1, the one before 1/2, then 1/4, ... (AB and OFD)."""
    return [2.0 ** (i - n + 1) for i in range(n)]


@register("ab", paper="heo2019knowledge")
class AB(DistillationLoss):
    r"""Activation-boundary distillation ("Knowledge Transfer via Distillation of Activation
    Boundaries Formed by Hidden Neurons", Heo et al., AAAI 2019; catalogue id ``heo2019knowledge``).

    Alternative (squared-hinge) loss on the pre-ReLU responses :math:`s=r(S)` of the connected
    student and :math:`t` of the teacher, with margin :math:`\mu`:

    .. math::
        \ell(s,t) = (s+\mu)^2\,[s>-\mu]\,[t\le 0] + (s-\mu)^2\,[s\le\mu]\,[t>0],\qquad
        \mathcal{L} = w\,\frac{3}{1000\,B}\sum_{l=1}^{n} 2^{\,l-n}\sum \ell(s_l, t_l)

    Args:
        margin: :math:`\mu` (default 1).
        student_channels: C_s, the student's channel counts (a sequence, one per layer). Given with
            ``teacher_channels``, the loss owns one connector per layer, 1x1 conv (no bias) + BN,
            He-normal init (the authors' connector). ``None`` (default): no adapter, the student
            input is already adapted.
        teacher_channels: C_t, the teacher's channel counts (a sequence, one per layer): the width
            the adapter maps the student to. Give it together with ``student_channels``, or leave
            both ``None``.
        loss_weight: ``w`` (default 1).

    Notes:
        Shapes: lists ``feats_student``/``feats_teacher`` of ``(B, C, H, W)`` pre-ReLU maps ordered
        shallow to deep, equal shapes per layer; returns a scalar.

        Checked against RepDistiller ``distiller_zoo/AB.py`` (``ABLoss``, per-layer list summed as in
        ``helper/pretrain.py``), identical to the authors' bhheo/AB_distillation
        ``criterion_alternative_L2``. The ``3/1000`` and ``1/B`` scales and the layer weights are the
        official code's. In the official recipe AB only initialises the student (pre-training stage).
        Not zero when the student equals the teacher: the margin pushes responses beyond the boundary
        (``zero_at_match = False``).
    """

    zero_at_match = False

    def __init__(
        self,
        margin: float = 1.0,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.margin = margin
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.connectors = None
        if pairs is not None:
            self.connectors = nn.ModuleList(conv_bn_connector(s, t) for s, t in pairs)

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        check_layers(feats_student, feats_teacher)
        if self.connectors is not None:
            if len(self.connectors) != len(feats_student):
                raise ValueError(f"{len(self.connectors)} connectors, {len(feats_student)} layers")
            feats_student = [c(f) for c, f in zip(self.connectors, feats_student, strict=True)]
        n = len(feats_student)
        m = self.margin
        total = 0.0
        for w, s, t in zip(_layer_weights(n), feats_student, feats_teacher, strict=True):
            check_same_shape(s, t, "feature")
            # t > 0: (m - s)^2 where s <= m; t <= 0: (s + m)^2 where s > -m; i.e. relu(m -/+ s)^2.
            sign = 1.0 - 2.0 * (t.detach() > 0).to(s.dtype)
            total = total + w * F.relu(m + sign * s).pow(2).sum()
        batch = feats_student[0].shape[0]
        return self.loss_weight * total / batch * 3.0 / 1000.0

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return layers_example(batch, dtype, generator, large, layers=3)
