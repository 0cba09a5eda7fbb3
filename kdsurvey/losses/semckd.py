"""Semantic calibration for cross-layer distillation ("Cross-Layer Distillation with Semantic Calibration", Chen et al., AAAI 2021; catalogue id ``chen2021cross``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import conv_bn_relu
from kdsurvey.losses._checks import check_leading_dims, check_same_shape
from kdsurvey.losses._pooling import pool_to_smaller
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def _mse_per_sample(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error over every dimension but the first: shape ``(B,)``."""
    return F.mse_loss(a, b, reduction="none").flatten(1).mean(1)


class _NormalizedMLPEmbed(nn.Module):
    """Linear, ReLU, Linear, L2 normalisation (SemCKD's query/key embedding)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.width = dim_in  # the batch size it was built for
        self.net = nn.Sequential(
            nn.Linear(dim_in, 2 * dim_out), nn.ReLU(), nn.Linear(2 * dim_out, dim_out)
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.net(x), dim=1)


def _aa_embed(c_in: int, c_out: int) -> nn.Sequential:
    """SemCKD's per-pair regressor: 1x1, 3x3, 1x1 convs (no bias) with BN/ReLU between."""
    mid = 2 * c_out
    return nn.Sequential(
        conv_bn_relu(c_in, mid, 1),
        conv_bn_relu(mid, mid, 3),
        nn.Conv2d(mid, c_out, 1, bias=False),
    )


@register("semckd", paper="chen2021cross")
class SemCKD(DistillationLoss):
    r"""Semantic calibration for cross-layer distillation ("Cross-Layer Distillation with Semantic
    Calibration", Chen et al., AAAI 2021; catalogue id ``chen2021cross``).

    Every student layer ``i`` is matched to every teacher layer ``j``, weighted by an attention
    computed per sample from the layers' batch similarity matrices:

    .. math::
        \alpha_{b,ij} = \mathrm{softmax}_j\big(q_i(G^s_i)_b^\top k_j(G^t_j)_b\big),\quad
        G_l = \mathrm{vec}(F_l)\,\mathrm{vec}(F_l)^\top \in \mathbb{R}^{B\times B}

    .. math::
        \mathcal{L} = \frac{w}{B\,S}\sum_{b}\sum_{i=1}^{S}\sum_{j=1}^{T}\alpha_{b,ij}\,
            \mathrm{MSE}\big(r_{ij}(F^s_{i,b}),\,F^t_{j,b}\big)

    where the larger of the two maps is average-pooled to the smaller one's size.

    Args:
        student_channels: C_s, the student's channel counts (a sequence, one per layer). Given with
            ``teacher_channels``, the loss owns one regressor ``r_ij`` per student-teacher layer
            pair (official ``AAEmbed``: 1x1 conv to ``2 C_t``, BN, ReLU, 3x3 conv, BN, ReLU, 1x1
            conv to ``C_t``, no biases; PyTorch default init). ``None`` (default): no adapter, the
            student input is already adapted.
        teacher_channels: C_t, the teacher's channel counts (a sequence, one per layer): the width
            the adapter maps the student to. Give it together with ``student_channels``, or leave
            both ``None``.
        batch_size: with channel lists, also build the learned query/key embeddings ``q_i``, ``k_j``
            (official ``MLPEmbed`` on rows of the ``B x B`` similarity: Linear to ``2B/f``, ReLU,
            Linear to ``B/f``, L2 norm). Their input width is the batch size: a larger batch is
            split into slices of ``batch_size`` (the loss is their size-weighted mean), and the
            similarity rows of a smaller one are zero-padded to ``batch_size`` columns (the
            official loop skips smaller batches; here the absent samples count as orthogonal).
        factor: ``f``, embedding reduction (default 4).
        loss_weight: ``w`` (400, the official CIFAR-100 ``-b``; 50 on ImageNet).

    Notes:
        ``None`` (default) for all: no regressor (student and teacher channels must agree) and the
        embeddings reduce to their parameter-free part, the L2-normalised similarity rows.

        Forward: ``feats_student`` (``S`` maps ``(B, C, H, W)``) and ``feats_teacher`` (``T`` maps,
        ``S != T`` allowed). Returns a scalar. Checked against DefangChen/SemCKD
        (``models/util.py`` ``SelfA``/``AAEmbed``/``MLPEmbed``, ``distiller_zoo/SemCKD.py``); the
        official code pools to square ``(h, h)`` maps, here the smaller map's ``(h, w)``.
        ``zero_at_match`` is False: cross-layer pairs keep a positive weight even when every student
        map equals its teacher counterpart. Batch order matters once the learned embeddings exist.
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="DefangChen/SemCKD@ebe5db1 scripts/run_cifar_distill.sh:L25 and README.md:L37 "
            "(-r 1 -a 1 -b 400)",
            note="-a 1 adds vanilla KD (T 4) at weight 1, a separate loss here",
        ),
        "imagenet": Preset(
            source="DefangChen/SemCKD@ebe5db1 README.md:L41 (-r 1 -a 1 -b 50)",
            kwargs={"loss_weight": 50.0},
            note="-a 1 adds vanilla KD at weight 1, a separate loss here",
        ),
    }

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        batch_size: int | None = None,
        factor: int = 4,
        loss_weight: float = 400.0,
    ):
        super().__init__()
        self.loss_weight, self.batch_size = loss_weight, batch_size
        self.regressors = self.query = self.key = None
        if student_channels is not None or teacher_channels is not None:
            s, t = list(student_channels or []), list(teacher_channels or [])
            if not s or not t:
                raise ValueError("give both student_channels and teacher_channels, or neither")
            self.regressors = nn.ModuleList(_aa_embed(cs, ct) for cs in s for ct in t)
            self.n_student, self.n_teacher = len(s), len(t)
            if batch_size is not None:
                d = max(1, batch_size // factor)
                self.query = nn.ModuleList(_NormalizedMLPEmbed(batch_size, d) for _ in s)
                self.key = nn.ModuleList(_NormalizedMLPEmbed(batch_size, d) for _ in t)
        elif batch_size is not None:
            raise ValueError("batch_size (learned embeddings) needs the channel lists")

    @staticmethod
    def _embed(feats: Sequence[Tensor], embeds: nn.ModuleList | None) -> Tensor:
        out = []
        for i, f in enumerate(feats):
            flat = f.reshape(f.shape[0], -1)
            sim = flat @ flat.t()
            if embeds is not None and sim.shape[1] < embeds[i].width:
                sim = F.pad(sim, (0, embeds[i].width - sim.shape[1]))  # a short batch
            out.append(F.normalize(sim, dim=1) if embeds is None else embeds[i](sim))
        return torch.stack(out)

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        first = feats_teacher[0]
        for f in [*feats_student, *feats_teacher]:
            check_leading_dims(f, first)
        n_s, n_t, batch = len(feats_student), len(feats_teacher), first.shape[0]
        if self.regressors is not None and (n_s, n_t) != (self.n_student, self.n_teacher):
            raise ValueError(
                f"expected {self.n_student} student and {self.n_teacher} teacher "
                f"layers, got {n_s} and {n_t}"
            )
        if self.query is not None and batch > self.batch_size:
            # one loss per slice of batch_size samples (the last maybe shorter), as that many
            # batches would give, weighted by their sizes
            chunks = [
                (
                    self.forward(
                        [f[i : i + self.batch_size] for f in feats_student],
                        [f[i : i + self.batch_size] for f in feats_teacher],
                    ),
                    min(self.batch_size, batch - i),
                )
                for i in range(0, batch, self.batch_size)
            ]
            return sum(loss * n for loss, n in chunks) / batch
        feats_teacher = [f.detach() for f in feats_teacher]
        q = self._embed(feats_student, self.query)  # (S, B, d)
        k = self._embed(feats_teacher, self.key)  # (T, B, d)
        attention = torch.einsum("sbd,tbd->bst", q, k).softmax(-1)
        per_pair = []
        for i, fs in enumerate(feats_student):
            for j, ft in enumerate(feats_teacher):
                fs_ij, ft = pool_to_smaller(fs, ft)
                if self.regressors is not None:
                    fs_ij = self.regressors[i * n_t + j](fs_ij)
                check_same_shape(fs_ij, ft, f"student layer {i} / teacher layer {j}")
                per_pair.append(_mse_per_sample(fs_ij, ft))
        ind = torch.stack(per_pair, 1).view(batch, n_s, n_t)
        return self.loss_weight * (attention * ind).sum() / (batch * n_s)
