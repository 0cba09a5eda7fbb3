"""Instance Relationship Graph (Liu et al., CVPR 2019; catalogue id ``liu2019knowledge``, "Knowledge Distillation via Instance Relationship Graph")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_batch, check_same_length, tensor_list
from kdsurvey.losses._relations import flatten_samples, pairwise_distances
from kdsurvey.losses.base import DistillationLoss, Preset, embedding_example, feature_example
from kdsurvey.losses.registry import register


@register("irg", paper="liu2019knowledge")
class IRG(DistillationLoss):
    r"""Instance Relationship Graph (Liu et al., CVPR 2019; catalogue id ``liu2019knowledge``,
    "Knowledge Distillation via Instance Relationship Graph").

    With :math:`D(f)` the squared pairwise-distance matrix of the flattened batch divided by its
    maximum (+1e-12),

    .. math::
        \mathcal{L} = w\Big[w_g\big(\mathrm{MSE}(D(f^s), D(f^t)) + [\text{same shape}]\,
        \mathrm{MSE}(f^s, f^t)\big) + w_{tr}\sum_{k}\big(
        \mathrm{MSE}(\mathrm{MSE}(D(l^s_{2k}), D(l^s_{2k+1})), \mathrm{MSE}(D(l^t_{2k}),
        D(l^t_{2k+1}))) + \mathrm{MSE}(\mathrm{MSE}(l^s_{2k}, l^s_{2k+1}),
        \mathrm{MSE}(l^t_{2k}, l^t_{2k+1}))\big)\Big]

    The edge part of the transform term is skipped with ``no_edge_transform``; its vertex part only
    exists when both pairs have equal shapes.

    Args:
        w_graph: ``w_g``, weight of the vertex + edge term (1).
        w_transform: ``w_tr``, weight of the IRG-transformation term (1).
        no_edge_transform: drop the edge part of the transform term (False).
        loss_weight: ``w``, multiplies the whole loss (0.005, SemCKD's CIFAR-100 ``-b``).

    Notes:
        Shapes: ``feat_student`` ``(B, *)`` and ``feat_teacher`` ``(B, *)`` (widths may differ);
        optional ``feats_student`` / ``feats_teacher``: lists of transform-layer maps, used in
        consecutive pairs (0, 1), (2, 3), ... Checked against the PyTorch port in SemCKD
        ``distiller_zoo/IRG.py`` ("code from author: yufanLIU/IRG").
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="DefangChen/SemCKD@ebe5db1 scripts/run_cifar_distill.sh:L23 (-r 1 -a 1 -b 0.005)",
            note="a library's port of the authors' code; -a 1 adds vanilla KD at weight 1, a "
            "separate loss here",
        ),
    }

    def __init__(
        self,
        w_graph: float = 1.0,
        w_transform: float = 1.0,
        no_edge_transform: bool = False,
        loss_weight: float = 0.005,
    ):
        super().__init__()
        self.w_graph = w_graph
        self.w_transform = w_transform
        self.no_edge_transform = no_edge_transform
        self.loss_weight = loss_weight

    @staticmethod
    def graph(x: Tensor) -> Tensor:
        d = pairwise_distances(flatten_samples(x), squared=True)
        return d / (d.max() + 1e-12)

    def forward(
        self,
        feat_student: Tensor,
        feat_teacher: Tensor,
        feats_student: Sequence[Tensor] | None = None,
        feats_teacher: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, D) student embeddings.
            feat_teacher: (B, D) teacher embeddings.
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.

            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.


        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "IRG feature")
        feat_teacher = feat_teacher.detach()
        loss = F.mse_loss(self.graph(feat_student), self.graph(feat_teacher))
        if feat_student.shape == feat_teacher.shape:
            loss = loss + F.mse_loss(feat_student, feat_teacher)
        loss = self.w_graph * loss
        trans_s, trans_t = (
            tensor_list(feats_student),
            [t.detach() for t in tensor_list(feats_teacher)],
        )
        check_same_length(trans_s, trans_t)
        for s, t in zip(trans_s, trans_t, strict=True):
            check_same_batch(s, t, "IRG transform feature")
        for k in range(0, len(trans_s) - 1, 2):
            s1, s2, t1, t2 = trans_s[k], trans_s[k + 1], trans_t[k], trans_t[k + 1]
            if not self.no_edge_transform:
                edge_s = F.mse_loss(self.graph(s1), self.graph(s2))
                edge_t = F.mse_loss(self.graph(t1), self.graph(t2))
                loss = loss + self.w_transform * F.mse_loss(edge_s, edge_t)
            if s1.shape == s2.shape and t1.shape == t2.shape:
                vert = F.mse_loss(F.mse_loss(s1, s2), F.mse_loss(t1, t2))
                loss = loss + self.w_transform * vert
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = embedding_example(batch, dtype, generator, large)
        out.update(feature_example(batch, dtype, generator, large, layers=2))
        return out
