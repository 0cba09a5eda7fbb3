"""Prime-aware adaptive distillation with an L2 loss (PAD-L2) of Zhang et al., ECCV 2020
(``zhang2020prime``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs
from kdsurvey.losses._checks import check_same_shape, connector_hint
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("pad_l2", paper="zhang2020prime")
class PADL2(DistillationLoss):
    r"""Prime-Aware Adaptive Distillation, L2 form (Zhang et al., ECCV 2020; ``zhang2020prime``).

    The student predicts, next to its embedding, a per-dimension log-variance
    :math:`s = \log\sigma^2` (an uncertainty branch); the feature-matching L2 loss of each
    sample and dimension is divided by that variance, with :math:`\log\sigma^2` as the penalty
    that stops the variance from growing without bound (heteroscedastic regression). Samples the
    student can match well ("prime samples") get a small variance, hence more weight:

    .. math:: \mathcal{L} = \frac{w}{BD}\sum_{b,d}\Big[
              \frac{(f^t_{b,d} - f^s_{b,d})^2}{\epsilon + e^{s_{b,d}}} + s_{b,d}\Big]

    (with ``reduction="sum"`` the batch is summed instead of averaged).

    Args:
        student_channels: D_s, the student embedding's width. Given with ``teacher_channels``,
            the loss owns the variance branch (``Linear(D_s, D_t)`` + ``BatchNorm1d(D_t)`` on the
            student embedding, giving :math:`s`), used whenever ``forward`` gets no
            ``log_variance``, and, when the widths differ, a ``Linear(D_s, D_t)`` projection of
            the student embedding. ``None`` (default): neither.
        teacher_channels: D_t, the teacher embedding's width. Give it together with
            ``student_channels``, or leave both ``None``.
        eps: :math:`\epsilon`, keeps the denominator away from zero.
        reduction: ``"mean"`` averages the per-sample losses over the batch, ``"sum"`` adds them.
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        The authors released no code. Checked against torchdistill
        (yoshitomo-matsubara/torchdistill) ``torchdistill/losses/mid_level.py::PADL2Loss.forward``
        (commit 3e4373c45214c5c56eebac481d5bfe8b8735aa05), a re-implementation whose comment says
        it follows code the authors provided: the loss is averaged over dimensions (the paper
        writes a sum) and :math:`\epsilon` is added to the variance. The variance branch is
        torchdistill's (``torchdistill/models/wrapper.py``, ``VarianceBranch4PAD``, commit
        51609bd: ``Linear(feat_dim, feat_dim)`` then ``BatchNorm1d``, PyTorch default init, on
        the flattened student embedding), a library's adapter; with widths that differ it maps
        D_s to D_t. The projection for widths that differ is this project's (a ``Linear``,
        PyTorch default init): torchdistill's sample config distils between embeddings of one
        width (ResNet-34 to ResNet-18, 512). The loss is not zero when the embeddings agree (the
        log-variance penalty remains).
    """

    zero_at_match = False
    presets = {
        "ilsvrc2012": Preset(
            source="yoshitomo-matsubara/torchdistill configs/sample/ilsvrc2012/pad/"
            "resnet18_from_resnet34.yaml (commit ec98e12): stage2 PADL2Loss eps 1e-6, reduction "
            "mean, weight 1.0; ce weight 1.0",
            note="torchdistill first trains 10 epochs on cross-entropy plus the plain MSE of the "
            "embeddings (stage1), then 10 epochs with this loss (stage2).",
        )
    }

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        eps: float = 1e-6,
        reduction: str = "mean",
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.variance_branch = self.projection = None
        pairs = channel_pairs(student_channels, teacher_channels)
        if pairs is not None:
            ((d_s, d_t),) = pairs
            self.variance_branch = nn.Sequential(nn.Linear(d_s, d_t), nn.BatchNorm1d(d_t))
            if d_s != d_t:
                self.projection = nn.Linear(d_s, d_t)
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.eps = eps
        self.reduction = reduction
        self.loss_weight = loss_weight

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        n, d = (256, 512) if large else (batch, 16)

        def rand():
            return torch.randn(n, d, generator=generator, dtype=dtype)

        return {"feat_student": rand(), "feat_teacher": rand(), "log_variance": 0.5 * rand()}

    def forward(
        self, feat_student: Tensor, feat_teacher: Tensor, log_variance: Tensor | None = None
    ) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, D) student embeddings (trailing dimensions are flattened).
            feat_teacher: (B, D) teacher embeddings (trailing dimensions are flattened).
            log_variance: (B, D) the student's predicted log-variance, a student output that
                receives gradient; left out, the loss's own variance branch gives it.

        Returns:
            The scalar loss.
        """
        embedding = feat_student.flatten(1)
        if log_variance is None:
            if self.variance_branch is None:
                raise ValueError(
                    "PAD-L2 needs log_variance, or the loss's variance branch: build it with "
                    "student_channels=D_s, teacher_channels=D_t"
                )
            log_variance = self.variance_branch(embedding)
        if self.projection is not None:
            feat_student = self.projection(embedding)
        hint = "" if self.projection is not None else connector_hint(feat_student, feat_teacher)
        check_same_shape(feat_student, feat_teacher, "embeddings", hint)
        f_s, f_t = feat_student.flatten(1), feat_teacher.detach().flatten(1)
        log_var = log_variance.reshape(f_s.shape)
        per_sample = ((f_t - f_s) ** 2 / (self.eps + torch.exp(log_var)) + log_var).mean(dim=1)
        reduced = per_sample.mean() if self.reduction == "mean" else per_sample.sum()
        return self.loss_weight * reduced
