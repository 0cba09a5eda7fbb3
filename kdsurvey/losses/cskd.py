"""Category structure KD (Chen et al., ECCV 2020; catalogue id ``chen2020improving``, "Improving Knowledge Distillation via Category Structure")."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._checks import check_same_batch, check_same_shape
from kdsurvey.losses._relations import cosine_matrix, flatten_samples
from kdsurvey.losses.base import DistillationLoss, Preset, feature_example
from kdsurvey.losses.registry import register


def _class_centres(x: Tensor, onehot: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class means of the flattened rows of ``x`` (zeros for absent classes) and counts."""
    counts = onehot.sum(0)
    sums = onehot.t() @ flatten_samples(x)
    return sums / counts.clamp(min=1).unsqueeze(1), counts


def _own_centre(x: Tensor, onehot: Tensor, target: Tensor) -> Tensor:
    """Each sample's class centre (over the rows selected by ``onehot``), shaped like ``x``;
    a sample whose class has no selected row keeps its own value."""
    centres, counts = _class_centres(x, onehot)
    have = (counts[target] > 0).to(x).view(-1, *([1] * (x.dim() - 1)))
    return have * centres[target].view_as(x) + (1 - have) * x


@register("cskd", paper="chen2020improving")
class CSKD(DistillationLoss):
    r"""Category structure KD (Chen et al., ECCV 2020; catalogue id ``chen2020improving``,
    "Improving Knowledge Distillation via Category Structure").

    With :math:`c(\cdot)` a sample's class centre in the batch (true labels) and :math:`\tilde c`
    the centre over the correctly classified samples only (each network's own predictions), the
    intra-category structure is each sample's offset from its centre, the inter-category structure
    the cosine-similarity matrix :math:`R` of the class centres present in the batch
    (:math:`K'` of them):

    .. math::
        \mathcal{L} = w\Big[\lambda_{intra}\Big(\tfrac{\mathrm{MSE}(f^t-\tilde c^t,\;
        f^s-\mathrm{sg}(\tilde c^s))}{CHW} + \tfrac{\mathrm{MSE}(z^t-c^t,\;z^s-\mathrm{sg}(c^s))}{K}
        \Big) + \lambda_c\,\mathrm{MSE}(z^s, \mathrm{sg}(c^s)) + \lambda_{inter}\Big(
        \tfrac{\mathrm{MSE}(R^t_f,R^s_f)}{K'} + \tfrac{\mathrm{MSE}(R^t_z,R^s_z)}{K'}\Big)
        + \lambda_{kd}\,\mathrm{MSE}(z^t, z^s)\Big]

    (:math:`\mathrm{sg}` = stop-gradient, :math:`f` features, :math:`z` logits, :math:`K` classes).

    Args:
        intra_weight: :math:`\lambda_{intra}` (0.002).
        center_weight: :math:`\lambda_c` (0.1), the student-only centre term of the official
            ``intra_cor``.
        inter_weight: :math:`\lambda_{inter}` (0.04).
        kd_weight: :math:`\lambda_{kd}` (1e-6 = ``(1 - alpha) * 1e-5`` in the official script).
        use_filter: centre the feature offsets on correctly classified samples (True).
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns the student's ``1x1`` conv (no bias, PyTorch default init: the official script
            assigns fresh ``conv1x1`` branches after building the ResNet) to the teacher's channels;
            otherwise features must already have equal shapes. ``None`` (default): no adapter, the
            student input is already adapted.
        teacher_channels: C_t, the teacher's channel count: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        loss_weight: ``w`` (1: the official script weights the terms inside).

    Notes:
        Shapes: ``feat_student``/``feat_teacher`` ``(B, C, H, W)`` (or ``(B, D)``; the division then
        uses ``D``), ``logits_*`` ``(B, K)``, ``target`` ``(B,)``. Checked against the authors' code
        xeanzheng/CSKD ``train_cifar.py`` (``category_loss`` and ``loss_KD``, cross-entropy excluded);
        as there, the logit offsets use unfiltered centres even with ``use_filter``. The official
        cosine has no epsilon (F.normalize's 1e-12 is used here). ``zero_at_match`` is False: the
        centre term pulls the student's logits to their class means whatever the teacher does.
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="xeanzheng/CSKD@a309f0f train_cifar.py:L227-244 (intra 0.002, inter 0.04, "
            "loss = 0.9 CE + category loss + 0.1 KD)",
            task_weight=0.9,
        ),
    }

    def __init__(
        self,
        intra_weight: float = 0.002,
        center_weight: float = 0.1,
        inter_weight: float = 0.04,
        kd_weight: float = 1e-6,
        use_filter: bool = True,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.intra_weight, self.center_weight = intra_weight, center_weight
        self.inter_weight, self.kd_weight = inter_weight, kd_weight
        self.use_filter = use_filter
        self.loss_weight = loss_weight
        self.connector = None
        if student_channels is not None and teacher_channels is not None:
            self.connector = nn.Conv2d(student_channels, teacher_channels, 1, bias=False)

    def forward(
        self,
        feat_student: Tensor,
        feat_teacher: Tensor,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            target: (B,) int64 class labels.

        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "CSKD feature")
        check_same_shape(logits_student, logits_teacher, "CSKD logits")
        check_same_batch(logits_student, feat_student, "CSKD logits/feature")
        f_s = self.connector(feat_student) if self.connector is not None else feat_student
        check_same_shape(f_s, feat_teacher, "CSKD feature")
        f_t, z_t, z_s = feat_teacher.detach(), logits_teacher.detach(), logits_student
        onehot = F.one_hot(target, z_s.shape[1]).to(z_s)
        if self.use_filter:
            ok_t = (z_t.argmax(1) == target).to(z_s).unsqueeze(1)
            ok_s = (z_s.detach().argmax(1) == target).to(z_s).unsqueeze(1)
            c_ft, c_fs = (
                _own_centre(f_t, onehot * ok_t, target),
                _own_centre(f_s, onehot * ok_s, target),
            )
        else:
            c_ft, c_fs = _own_centre(f_t, onehot, target), _own_centre(f_s, onehot, target)
        c_zt, c_zs = _own_centre(z_t, onehot, target), _own_centre(z_s, onehot, target).detach()
        per_sample = f_t[0].numel()
        intra = (
            F.mse_loss(f_s - c_fs.detach(), f_t - c_ft) / per_sample
            + F.mse_loss(z_s - c_zs, z_t - c_zt) / z_s.shape[1]
        )
        centre = F.mse_loss(z_s, c_zs)
        present = onehot.sum(0) > 0
        cen_ft, cen_fs = (_class_centres(f, onehot)[0][present] for f in (f_t, f_s))
        cen_zt, cen_zs = (_class_centres(z, onehot)[0][present] for z in (z_t, z_s))
        k = int(present.sum())
        inter = (
            F.mse_loss(cosine_matrix(cen_fs), cosine_matrix(cen_ft))
            + F.mse_loss(cosine_matrix(cen_zs), cosine_matrix(cen_zt))
        ) / k
        loss = (
            self.intra_weight * intra
            + self.center_weight * centre
            + self.inter_weight * inter
            + self.kd_weight * F.mse_loss(z_s, z_t)
        )
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = feature_example(batch, dtype, generator, large)
        n = out["feat_student"].shape[0]
        classes = 100 if large else 10
        out["logits_student"] = torch.randn(n, classes, generator=generator, dtype=dtype)
        out["logits_teacher"] = 2 * torch.randn(n, classes, generator=generator, dtype=dtype)
        # few classes per batch, so that class centres average several samples
        out["target"] = torch.randint(0, max(2, n // 2), (n,), generator=generator)
        return out
