"""Variational Information Distillation (Ahn et al., CVPR 2019; ``ahn2019variational``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs
from kdsurvey.losses._checks import check_same_shape, connector_hint
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("vid", paper="ahn2019variational")
class VID(DistillationLoss):
    r"""Variational Information Distillation (Ahn et al., CVPR 2019; catalogue id
    ``ahn2019variational``, "Variational Information Distillation for Knowledge Transfer").

    VID maximises a variational lower bound on the mutual information between teacher and student
    features: the teacher feature :math:`t` is modelled as a Gaussian whose mean
    :math:`\mu(s)` is regressed from the student's feature and whose variance
    :math:`\sigma_c^2 = \log(1 + e^{\alpha_c}) + \epsilon` is a learned per-channel constant, and the
    loss is the negative log-likelihood (without :math:`\tfrac12\log 2\pi`), averaged over all
    :math:`B\,C\,H\,W` elements:

    .. math::
        \mathcal{L} = \frac{w}{BCHW}\sum_{b,c,h,w}\frac12\Big(
        \frac{(\mu_{b,c,h,w} - t_{b,c,h,w})^2}{\sigma_c^2} + \log\sigma_c^2\Big)

    Args:
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns the regressor :math:`\mu(\cdot)` of the official code: three 1x1
            convolutions without bias, C_s to C_t to C_t to C_t, with a ReLU after the first two
            (PyTorch default init), and the learned variance of ``C_t`` channels. ``None``
            (default): no regressor, ``feat_student`` is the already-regressed mean.
        teacher_channels: C_t, the teacher's channel count. Give it together with
            ``student_channels``, or leave both ``None``.
        channels: number of teacher channels ``C`` when there is no regressor; when given, the
            loss owns a learned per-channel variance parameter :math:`\alpha` (``log_scale``),
            used whenever ``forward`` gets no ``pred_var``. ``None`` (default): no parameter
            (or ``teacher_channels`` of them with the regressor).
        init_pred_var: the variance :math:`\sigma^2` that the learned parameter starts from (5.0).
        eps: :math:`\epsilon`, the variance floor added to the softplus (1e-5).
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        Shapes: ``feat_student`` (the regressed mean) and ``feat_teacher`` ``(B, C, H, W)``,
        ``pred_var`` ``(C,)``; returns a scalar. When the teacher map is larger it is
        average-pooled to the student's size first, as the official code does (it pools the
        larger of the two before the regressor, so a larger student map must be pooled by the
        caller).

        The regressor :math:`\mu(\cdot)` is the official one (RepDistiller
        ``distiller_zoo/VID.py``, ``VIDLoss.regressor``, commit b84f547, which builds it with
        ``num_mid_channel = num_target_channels``, as ``train_student.py`` does): the loss owns it
        when given both channel counts, and then pools the student map first when it is the
        larger, as the official ``forward`` does. Without them ``feat_student`` is the
        already-regressed mean. The variance is either given to ``forward`` as ``pred_var``
        (positive, differentiable) or computed from the loss's own parameter.

        Checked against RepDistiller (HobbitLong/RepDistiller ``distiller_zoo/VID.py``,
        ``VIDLoss.forward``, commit b84f547, the authors' code restructured) with the regressor
        replaced by the identity and the variance computed from its ``log_scale`` parameter (the
        official parameter is float32: 3.4e-8 on the value in that case); RepDistiller sums one
        such loss per intermediate layer. This is the paper's Gaussian negative log-likelihood
        without its constant term. The authors' repository
        (ssahn0215/variational-information-distillation) was not run.
    """

    zero_at_match = False  # the log-variance term remains
    presets = {
        "cifar100": Preset(
            source="HobbitLong/RepDistiller scripts/run_cifar_distill.sh:15 (-a 0 -b 1, -r 1 "
            "default; commit b84f547)",
            note="RepDistiller sums one such loss per intermediate layer (feat[1:-1]).",
        )
    }

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        channels: int | None = None,
        init_pred_var: float = 5.0,
        eps: float = 1e-5,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.eps, self.loss_weight = eps, loss_weight
        self.log_scale = self.regressor = None
        pairs = channel_pairs(student_channels, teacher_channels)
        if pairs is not None:
            ((c_s, c_t),) = pairs
            self.regressor = nn.Sequential(
                nn.Conv2d(c_s, c_t, 1, bias=False),
                nn.ReLU(),
                nn.Conv2d(c_t, c_t, 1, bias=False),
                nn.ReLU(),
                nn.Conv2d(c_t, c_t, 1, bias=False),
            )
            channels = c_t if channels is None else channels
        if channels is not None:
            # inverse softplus of (init_pred_var - eps), so that softplus(.) + eps == init_pred_var
            init = math.log(math.expm1(init_pred_var - eps))
            self.log_scale = nn.Parameter(torch.full((channels,), init))

    def variance(self) -> Tensor:
        """The loss's own per-channel variance :math:`\\sigma^2` (needs ``channels``)."""
        if self.log_scale is None:
            raise ValueError("VID: pass pred_var, or build the loss with channels=C")
        return F.softplus(self.log_scale) + self.eps

    def forward(
        self, feat_student: Tensor, feat_teacher: Tensor, pred_var: Tensor | None = None
    ) -> Tensor:
        r"""The loss of one batch (one layer).

        Args:
            feat_student: (B, C, H, W) the mean :math:`\mu(s)` regressed from the student (the
                student's own map, of C_s channels, when the loss owns the regressor).
            feat_teacher: (B, C, H', W') teacher feature map, pooled to ``H x W`` when larger.
            pred_var: (C,) positive per-channel variance :math:`\sigma^2`; left out, the loss's
                own learned variance is used.

        Returns:
            The scalar loss.
        """
        target = feat_teacher.detach()
        if self.regressor is not None:
            if (
                feat_student.dim() == 4
                and target.dim() == 4
                and feat_student.shape[2] > target.shape[2]
            ):
                feat_student = F.adaptive_avg_pool2d(feat_student, target.shape[2:])
            feat_student = self.regressor(feat_student)
        if (
            target.dim() == 4
            and feat_student.dim() == 4
            and target.shape[2] > feat_student.shape[2]
        ):
            target = F.adaptive_avg_pool2d(target, feat_student.shape[2:])
        hint = (
            "" if self.regressor is not None else connector_hint(feat_student, target, "regressor")
        )
        check_same_shape(feat_student, target, "VID mean and teacher feature", hint)
        var = self.variance() if pred_var is None else pred_var
        var = var.to(feat_student.dtype).reshape(1, -1, *([1] * (feat_student.dim() - 2)))
        nll = 0.5 * ((feat_student - target).pow(2) / var + torch.log(var))
        return self.loss_weight * nll.mean()

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        shape = (64, 256, 16, 16) if large else (batch, 8, 4, 4)
        return {
            "feat_student": torch.randn(*shape, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(*shape, generator=generator, dtype=dtype),
            "pred_var": 0.5 + torch.rand(shape[1], generator=generator, dtype=dtype) * 4,
        }
