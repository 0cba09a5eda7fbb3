"""Global Instance Relation Distillation (Hu et al., Neural Computing and Applications 2024; catalogue id ``hu2024global``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_batch, check_same_length, tensor_list
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("gird", paper="hu2024global", evidence="abstract")
class GIRD(DistillationLoss):
    r"""Global Instance Relation Distillation (Hu et al., Neural Computing and Applications 2024;
    catalogue id ``hu2024global``).

    Feature reutilisation: each layer keeps a FIFO memory of the L2-normalised flattened features
    of previous batches (teacher and student, stored without gradient). The similarity relation
    of the current batch is taken against the batch and the memory,
    :math:`A_l = \hat f_l\,[\hat f_l;\,M_l]^\top \in \mathbb R^{B\times(B+|M|)}`, and its evolution
    across consecutive layers is :math:`E_l = A_{l+1} - A_l`:

    .. math::
        \mathcal{L} = w\Big[\lambda_r\sum_l \mathrm{MSE}(A^s_l, A^t_l)
        + \lambda_e\sum_l \mathrm{MSE}(E^s_l, E^t_l)\Big]

    Args:
        memory_size: features kept per layer and network (256; 0 disables the memory).
        relation_weight: :math:`\lambda_r` (1).
        evolution_weight: :math:`\lambda_e` (1).
        loss_weight: ``w``.

    Notes:
        Shapes: ``feats_student`` / ``feats_teacher``: lists of ``(B, *)`` tensors (widths may
        differ). The memory is updated after each forward pass in training mode only (a new layer
        width resets it); it is a buffer, so it follows ``.to()``. The paper is paywalled and no code
        was found: implemented from its abstract (stored features, pairwise similarity relations,
        cross-layer relation evolution). Inferred: cosine similarity, MSE matching, the evolution as a
        difference of consecutive relation matrices, the memory size and the weights.
    """

    def __init__(
        self,
        memory_size: int = 256,
        relation_weight: float = 1.0,
        evolution_weight: float = 1.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.memory_size = memory_size
        self.relation_weight, self.evolution_weight = relation_weight, evolution_weight
        self.loss_weight = loss_weight

    def _memory(self, name: str, like: Tensor) -> Tensor:
        bank = getattr(self, name, None)
        if bank is None or bank.shape[1] != like.shape[1]:
            return like.new_zeros(0, like.shape[1])
        return bank.to(like)

    def _store(self, name: str, value: Tensor, bank: Tensor) -> None:
        new = torch.cat([value.detach(), bank])[: self.memory_size]
        if name in self._buffers:
            self._buffers[name] = new
        else:
            self.register_buffer(name, new)

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        feats_student, feats_teacher = tensor_list(feats_student), tensor_list(feats_teacher)
        check_same_length(feats_student, feats_teacher)
        rel_s, rel_t, updates = [], [], []
        for layer, (s, t) in enumerate(zip(feats_student, feats_teacher, strict=True)):
            check_same_batch(s, t, "GIRD feature")
            zs, zt = (
                F.normalize(flatten_samples(s), dim=1),
                F.normalize(flatten_samples(t.detach()), dim=1),
            )
            ms, mt = self._memory(f"memory_s{layer}", zs), self._memory(f"memory_t{layer}", zt)
            if ms.shape[0] != mt.shape[0]:
                ms, mt = ms[:0], mt[:0]
            rel_s.append(zs @ torch.cat([zs, ms]).t())
            rel_t.append(zt @ torch.cat([zt, mt]).t())
            updates += [(f"memory_s{layer}", zs, ms), (f"memory_t{layer}", zt, mt)]
        loss = (
            sum(F.mse_loss(a, b) for a, b in zip(rel_s, rel_t, strict=True)) * self.relation_weight
        )
        for k in range(len(rel_s) - 1):
            if rel_s[k].shape == rel_s[k + 1].shape:
                e_s, e_t = rel_s[k + 1] - rel_s[k], rel_t[k + 1] - rel_t[k]
                loss = loss + self.evolution_weight * F.mse_loss(e_s, e_t)
        if self.training and self.memory_size > 0:
            for name, value, bank in updates:
                self._store(name, value, bank)
        return self.loss_weight * loss
