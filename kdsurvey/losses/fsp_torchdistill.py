"""torchdistill's FSP loss (``torchdistill/losses/mid_level.py``, ``FSPLoss``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._adapters import connect, layer_connectors
from kdsurvey.losses._checks import check_same_dims, check_same_length, connector_hint
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.fsp import FSP
from kdsurvey.losses.registry import register


def _fsp_matrix(first: Tensor, second: Tensor) -> Tensor:
    """``(B, C_first, C_second)``: both maps max-pooled to the smaller height and width."""
    h = min(first.shape[2], second.shape[2])
    w = min(first.shape[3], second.shape[3])
    if first.shape[2:] != (h, w):
        first = F.adaptive_max_pool2d(first, (h, w))
    if second.shape[2:] != (h, w):
        second = F.adaptive_max_pool2d(second, (h, w))
    return torch.einsum("bip,bjp->bij", first.flatten(2), second.flatten(2)) / (h * w)


@register("fsp_torchdistill", paper="yim2017gift")
class FSPTorchdistill(DistillationLoss):
    r"""Flow of Solution Procedure as torchdistill runs it (Yim et al., CVPR 2017; catalogue id
    ``yim2017gift``, "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization
    and Transfer Learning").

    For each pair :math:`p = (a, b)` of maps of one network, both are adaptive-max-pooled to the
    smaller height and the smaller width of the two (each dimension separately), and the FSP
    matrix of sample :math:`n` is
    :math:`G_p[n, i, j] = \frac{1}{HW}\sum_{h,w} F_a[n,i,h,w]\,F_b[n,j,h,w]`. The loss sums, over
    the columns :math:`j`, the L2 norm of the difference taken over the first map's channels
    :math:`i`, and averages over the batch:

    .. math::
        \mathcal{L} = \frac{w}{B}\sum_p \lambda_p \sum_{n=1}^{B}\sum_j
        \big\lVert G^s_p[n, :, j] - G^t_p[n, :, j]\big\rVert_2

    This differs from the ``fsp`` loss (RepDistiller: average pooling to a square size and the
    mean squared difference of the matrices); both are kept, for the two code bases' numbers.

    Args:
        pairs: which maps of the lists form each FSP matrix, as ``(first, second)`` indices
            (torchdistill configures each pair's first and second module); ``None`` (default):
            consecutive maps, ``(0, 1), (1, 2), ...``.
        pair_weights: weight :math:`\lambda_p` of each pair (torchdistill's per-pair ``weight``);
            ``None`` (default): 1 for every pair.
        student_channels: C_s of each map (a sequence, one per layer). Given with
            ``teacher_channels``, the loss owns a connector for each map whose width differs
            from the teacher's (1x1 conv + BatchNorm to C_t); ``None`` (default): none, the
            widths already agree.
        teacher_channels: C_t of each map (a sequence). Give it together with
            ``student_channels``, or leave both ``None``.
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        Shapes: ``feats_student`` and ``feats_teacher`` are lists of ``(B, C_l, H_l, W_l)`` maps
        with equal batch sizes and equal channel counts per position (spatial sizes may differ
        between the networks and need not be square); returns a scalar. Checked against
        torchdistill (yoshitomo-matsubara/torchdistill ``torchdistill/losses/mid_level.py``,
        ``FSPLoss.forward``, commit 3e4373c), a library's variant, not the authors' code (none is
        public).

        Connectors: the official code has none (it compares networks of equal widths;
        torchdistill's ``FSPLoss`` and RepDistiller's ``FSP`` need equal channel counts). Given
        both channel lists, the loss connects each thinner student map with RepDistiller's generic connector ``ConnectorV2``
        (``models/util.py``, commit b84f547: 1x1 conv, BatchNorm, He init), a library's adapter,
        applied before the FSP matrices are formed.
    """

    presets = {
        "ilsvrc2012": Preset(
            source="yoshitomo-matsubara/torchdistill configs/sample/ilsvrc2012/fsp/"
            "resnet18_from_resnet34.yaml (commit cf72fdf): stage1 FSPLoss weight 1.0, pair "
            "weights 1",
            task_weight=0.0,
            note="Stage 1 (5 epochs, Adam lr 1e-4) trains on this loss alone; stage 2 (15 "
            "epochs) on cross-entropy alone.",
        )
    }

    def __init__(
        self,
        pairs: Sequence[Sequence[int]] | None = None,
        pair_weights: Sequence[float] | None = None,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.pairs = None if pairs is None else [tuple(int(i) for i in p) for p in pairs]
        if self.pairs is not None and any(len(p) != 2 for p in self.pairs):
            raise ValueError(f"pairs must be (first, second) indices, got {pairs}")
        if pair_weights is not None and pairs is not None and len(pair_weights) != len(pairs):
            raise ValueError(f"{len(pair_weights)} pair weights for {len(pairs)} pairs")
        self.pair_weights = None if pair_weights is None else [float(x) for x in pair_weights]
        self.loss_weight = loss_weight
        self.connectors = layer_connectors(student_channels, teacher_channels)

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps.

        Returns:
            The scalar loss.
        """
        check_same_length(feats_student, feats_teacher)
        feats_student = connect(self.connectors, feats_student)
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_dims(
                s,
                t,
                (0, 1),
                "FSP feature map (batch and channels)",
                connector_hint(s, t, per_layer=True),
            )
        pairs = self.pairs or [(i, i + 1) for i in range(len(feats_student) - 1)]
        weights = self.pair_weights or [1.0] * len(pairs)
        if len(weights) != len(pairs):
            raise ValueError(f"{len(weights)} pair weights for {len(pairs)} pairs")
        teachers = [t.detach() for t in feats_teacher]
        loss = feats_student[0].new_zeros(())
        for (a, b), lam in zip(pairs, weights, strict=True):
            gs = _fsp_matrix(feats_student[a], feats_student[b])
            gt = _fsp_matrix(teachers[a], teachers[b])
            loss = loss + lam * torch.linalg.vector_norm(gs - gt, dim=1).sum()
        return self.loss_weight * loss / feats_student[0].shape[0]

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return FSP.example_inputs(batch=batch, dtype=dtype, generator=generator, large=large)
