"""Graph distillation from several teachers (Zhang & Peng, IJCAI 2018; catalogue id ``zhang2018better``, "Better and Faster: Knowledge Transfer from Multiple Self-supervised Learning Tasks via Graph Distillation for Video Classification")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_teachers, tensor_list
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.multi_teacher import MultiTeacher
from kdsurvey.losses.registry import register


def _count_sketch(x: Tensor, dim: int, seed: int) -> Tensor:
    """Count sketch of the rows of ``x`` into ``dim`` bins, hash fixed by ``(seed, width)``."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + x.shape[1])
    h = torch.randint(0, dim, (x.shape[1],), generator=g).to(x.device)
    s = (torch.randint(0, 2, (x.shape[1],), generator=g) * 2 - 1).to(x)
    return x.new_zeros(x.shape[0], dim).index_add(1, h, x * s)


def compact_bilinear(x: Tensor, y: Tensor, dim: int, seed: int = 0) -> Tensor:
    r"""Compact bilinear pooling (Tensor Sketch, Gao et al. 2016) of row pairs, followed by the
    usual signed square root and L2 normalisation: an approximation of :math:`x \otimes y` in
    ``dim`` dimensions with fixed random hashes (deterministic, no parameters)."""
    fx = torch.fft.rfft(_count_sketch(x, dim, 2 * seed), dim=1)
    fy = torch.fft.rfft(_count_sketch(y, dim, 2 * seed + 1), dim=1)
    z = torch.fft.irfft(fx * fy, n=dim, dim=1)
    z = torch.sign(z) * torch.sqrt(z.abs() + 1e-12)
    return F.normalize(z, dim=1)


def _pooled(x: Tensor) -> Tensor:
    """Global-average-pool feature maps; pass vectors through."""
    return x.mean(dim=(2, 3)) if x.dim() == 4 else flatten_samples(x)


def _pair_weights(weights: Tensor | Sequence[float] | None, k: int) -> tuple[list, Tensor]:
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    if weights is None:
        return pairs, torch.full((len(pairs),), 1.0 / len(pairs))
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.shape == (k, k):
        w = torch.stack([w[i, j] for i, j in pairs])
    if w.numel() != len(pairs):
        raise ValueError(f"edge weights must be ({k}, {k}) or {len(pairs)} values")
    return pairs, w / w.sum()


@register("graph_kd", paper="zhang2018better", evidence="paper")
class GraphKD(DistillationLoss):
    r"""Graph distillation from several teachers (Zhang & Peng, IJCAI 2018; catalogue id
    ``zhang2018better``, "Better and Faster: Knowledge Transfer from Multiple Self-supervised
    Learning Tasks via Graph Distillation for Video Classification").

    Teachers are graph nodes; every edge :math:`(i, j)`, :math:`i\le j` (self-loops included, so one
    teacher works too) carries an ensembled piece of knowledge the student must match.

    *Logits graph* (multi-distribution joint matching with the Earth Mover's distance): the edge
    target is :math:`m_{ij}=\tfrac12(p_i+p_j)`, :math:`p_k=\sigma(z^{t_k}/T)`, and the cost is the
    EMD under the uniform (0/1) ground distance between classes, i.e. the total variation
    :math:`\tfrac12\|q-m_{ij}\|_1`, :math:`q=\sigma(z^s/T)`.

    *Representation graph*: the edge representation is the compact bilinear pooling
    :math:`\mathrm{CBP}(f_i, f_j)` of the two teachers' pooled features (which handles teachers of
    different widths); the student's own bilinear representation :math:`\mathrm{CBP}(f_s, f_s)`
    is pulled towards it.

    .. math::
        \mathcal{L} = w\sum_{i\le j}\alpha_{ij}\Big[\lambda_l\,\tfrac12\|q-m_{ij}\|_1
        + \lambda_r\,\|\mathrm{CBP}(f_s,f_s)-\mathrm{CBP}(f_i,f_j)\|_2^2\Big]
        \quad(\text{both averaged over the batch})

    Args:
        temperature: :math:`T` (4).
        logit_weight: :math:`\lambda_l` (1).
        rep_weight: :math:`\lambda_r` (1).
        cbp_dim: output width of the compact bilinear pooling (512).
        edge_weights: :math:`\alpha_{ij}` as a ``(K, K)`` matrix (upper triangle used) or one value
            per edge; uniform when None.
        seed: fixes the count-sketch hashes of the bilinear pooling.
        loss_weight: ``w``.

    Notes:
        Shapes: ``logits_student`` ``(B, C)``, ``logits_teacher`` a list of ``(B, C)``; optional
        ``feat_student`` ``(B, C_s[, H, W])`` and ``feat_teacher`` a list (one per teacher, maps are
        globally average-pooled). No official code was found; implemented from the paper's
        description. Inferred (uncertain): the ground distance of the EMD, the pair ensembling by
        averaging, the student's bilinear self-representation (the paper may use a learned
        projection), the uniform edge weights and the defaults. ``zero_at_match`` is False: with
        several distinct teachers no student matches every edge.
    """

    zero_at_match = False

    def __init__(
        self,
        temperature: float = 4.0,
        logit_weight: float = 1.0,
        rep_weight: float = 1.0,
        cbp_dim: int = 512,
        edge_weights: Tensor | Sequence[float] | None = None,
        seed: int = 0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature, self.logit_weight, self.rep_weight = temperature, logit_weight, rep_weight
        self.cbp_dim, self.edge_weights, self.seed = cbp_dim, edge_weights, seed
        self.loss_weight = loss_weight

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor | Sequence[Tensor],
        feat_student: Tensor | None = None,
        feat_teacher: Tensor | Sequence[Tensor] | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: list of (B, C) logits, one per teacher.
            feat_student: (B, D) student embeddings.
            feat_teacher: list of (B, D_k) teacher embeddings, one per teacher.

        Returns:
            The scalar loss.
        """
        teachers = [z.detach() for z in tensor_list(logits_teacher)]
        check_teachers(logits_student, teachers, "graph-KD logits", dims=(0, 1))
        pairs, alpha = _pair_weights(self.edge_weights, len(teachers))
        alpha = alpha.to(logits_student)
        t = self.temperature
        q = F.softmax(logits_student / t, dim=1)
        p = [F.softmax(z / t, dim=1) for z in teachers]
        logit_terms = torch.stack(
            [0.5 * (q - 0.5 * (p[i] + p[j])).abs().sum(1).mean() for i, j in pairs]
        )
        loss = self.logit_weight * (alpha * logit_terms).sum()
        if feat_student is not None and feat_teacher is not None:
            feats_t = [_pooled(f.detach()) for f in tensor_list(feat_teacher)]
            if len(feats_t) != len(teachers):
                raise ValueError(f"{len(feats_t)} teacher features for {len(teachers)} teachers")
            f_s = _pooled(feat_student)
            check_teachers(f_s, feats_t, "graph-KD feature")
            r_s = compact_bilinear(f_s, f_s, self.cbp_dim, self.seed)
            rep_terms = torch.stack(
                [
                    (r_s - compact_bilinear(feats_t[i], feats_t[j], self.cbp_dim, self.seed))
                    .pow(2)
                    .sum(1)
                    .mean()
                    for i, j in pairs
                ]
            )
            loss = loss + self.rep_weight * (alpha * rep_terms).sum()
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = MultiTeacher.example_inputs(batch, dtype, generator, large)
        out["feat_teacher"] = [
            torch.randn(out["feat_student"].shape[0], 8 * (k + 2), generator=generator, dtype=dtype)
            for k in range(3)
        ]
        return out
