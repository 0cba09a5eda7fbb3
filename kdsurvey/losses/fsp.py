"""Flow of Solution Procedure (Yim et al., CVPR 2017; catalogue id ``yim2017gift``, "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer Learning")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kdsurvey.losses._adapters import connect, layer_connectors
from kdsurvey.losses._checks import check_same_dims, check_same_length, connector_hint
from kdsurvey.losses._pooling import pool_to_smaller_square
from kdsurvey.losses._relations import flatten_positions
from kdsurvey.losses.base import DistillationLoss, Preset
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
        student_channels: C_s of each map (a sequence, one per layer). Given with
            ``teacher_channels``, the loss owns a connector for each map whose width differs
            from the teacher's (1x1 conv + BatchNorm to C_t); ``None`` (default): none, the
            widths already agree.
        teacher_channels: C_t of each map (a sequence). Give it together with
            ``student_channels``, or leave both ``None``.
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        Shapes: ``feats_student`` and ``feats_teacher`` are lists of ``(B, C_l, H_l, W_l)`` maps with
        equal channel counts per layer (spatial sizes may differ between the networks); returns a
        scalar. Checked against RepDistiller ``distiller_zoo/FSP.py`` (the per-pair losses summed, as
        ``helper/pretrain.py`` does). The paper (and torchdistill) differ: torchdistill max-pools and
        uses a per-sample L2 norm; the default follows RepDistiller, whose numbers are the reference.

        Connectors: the official code has none (it compares networks of equal widths;
        RepDistiller's ``FSP`` refuses unequal channel counts). Given both channel lists, the loss
        connects each thinner student map with RepDistiller's generic connector ``ConnectorV2``
        (``models/util.py``, commit b84f547: 1x1 conv, BatchNorm, He init), a library's adapter,
        applied before the FSP matrices are formed.
    """

    presets = {
        "cifar100": Preset(
            source="HobbitLong/RepDistiller helper/pretrain.py:72-74 and helper/loops.py:174-176 "
            "(commit b84f547)",
            task_weight=0.0,
            note="A first stage: RepDistiller trains the student's feature layers on the summed "
            "FSP losses alone (init_epochs 30, lr 0.05), then trains on cross-entropy with no "
            "FSP term (its -b 50 is unused for FSP), as the paper's two stages do.",
        )
    }

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.connectors = layer_connectors(student_channels, teacher_channels)

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
        feats_student = connect(self.connectors, feats_student)
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_dims(
                s,
                t,
                (0, 1),
                "FSP feature map (batch and channels)",
                connector_hint(s, t, per_layer=True),
            )
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
