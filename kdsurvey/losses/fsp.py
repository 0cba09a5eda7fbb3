"""Flow of Solution Procedure (Yim et al., CVPR 2017; catalogue id ``yim2017gift``, "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer Learning")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kdsurvey.losses._checks import check_same_dims, check_same_length
from kdsurvey.losses._pooling import pool_to_smaller_square
from kdsurvey.losses._relations import flatten_positions
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("fsp", paper="yim2017gift")
class FSP(DistillationLoss):
    r"""Flow of Solution Procedure (Yim et al., CVPR 2017; catalogue id ``yim2017gift``,
    "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer
    Learning").

    For consecutive maps :math:`F_l, F_{l+1}` of one network (the larger one average-pooled to the
    smaller, square size) the FSP matrix is
    :math:`G_l[c', c] = \frac{1}{HW}\sum_{h,w} F_{l+1}[c',h,w]\,F_l[c,h,w]` and

    .. math:: \mathcal{L} = w\sum_l \operatorname{mean}\big((G^s_l - G^t_l)^2\big)

    Args:
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        Shapes: ``feats_student`` and ``feats_teacher`` are lists of ``(B, C_l, H_l, W_l)`` maps with
        equal channel counts per layer (spatial sizes may differ between the networks); returns a
        scalar. Checked against RepDistiller ``distiller_zoo/FSP.py`` (the per-pair losses summed, as
        ``helper/pretrain.py`` does). The paper (and torchdistill) differ: torchdistill max-pools and
        uses a per-sample L2 norm; the default follows RepDistiller, whose numbers are the reference.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    @staticmethod
    def fsp_matrices(feats: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for bot, top in zip(feats[:-1], feats[1:], strict=True):
            bot, top = pool_to_smaller_square(bot, top)
            out.append(
                torch.einsum("bih,bjh->bij", flatten_positions(top), flatten_positions(bot))
                / bot[0, 0].numel()
            )
        return out

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        check_same_length(feats_student, feats_teacher)
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_dims(s, t, (0, 1), "FSP feature map (batch and channels)")
        teachers = [t.detach() for t in feats_teacher]
        loss = feats_student[0].new_zeros(())
        for gs, gt in zip(
            self.fsp_matrices(feats_student), self.fsp_matrices(teachers), strict=True
        ):
            loss = loss + (gs - gt).pow(2).mean()
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        shapes = (
            [(64, 64, 16, 16), (64, 64, 16, 16), (64, 128, 8, 8)]
            if large
            else [(batch, 8, 4, 4), (batch, 8, 4, 4), (batch, 16, 2, 2)]
        )
        return {
            f"feats_{role}": [torch.randn(*s, generator=generator, dtype=dtype) for s in shapes]
            for role in ("student", "teacher")
        }
