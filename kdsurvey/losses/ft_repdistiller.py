"""RepDistiller's factor-transfer loss (``distiller_zoo/FT.py``, ``FactorTransfer``)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_leading_dims
from kdsurvey.losses._pooling import pool_to_smaller_square
from kdsurvey.losses._sources import REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def _factor(feat: Tensor, p1: float) -> Tensor:
    return F.normalize(feat.pow(p1).mean(1).flatten(1), dim=1)


@register("ft_repdistiller", paper="kim2018paraphrasing")
class FTRepDistiller(DistillationLoss):
    r"""Factor transfer as RepDistiller runs it ("Paraphrasing Complex Network: Network
    Compression via Factor Transfer", Kim, Park & Kwak, NeurIPS 2018; catalogue id
    ``kim2018paraphrasing``).

    RepDistiller's ``FactorTransfer`` turns each map into an attention-style factor: the
    :math:`p_1`-th power of the activations averaged over channels, flattened and L2-normalised
    per sample. The map with the larger height is first average-pooled to the other's height,
    squared (:math:`H \times H`):

    .. math::
        \phi(F) = \frac{\operatorname{vec}(\bar F)}{\lVert\operatorname{vec}(\bar F)\rVert_2},
        \quad \bar F = \frac1C\sum_c F_c^{\,p_1},\qquad
        \mathcal{L} = \frac{w}{B\,HW}\sum_{b}\sum_{k} \big|\phi(F^s_b)_k - \phi(F^t_b)_k\big|

    for :math:`p_2 = 1`; any other :math:`p_2` takes the mean of
    :math:`(\phi(F^s_b)_k - \phi(F^t_b)_k)^{p_2}` instead, without absolute value (an odd
    :math:`p_2` keeps the sign, as the library does). This is not the paper's loss, which compares
    the factors of a trained paraphraser and a translator and which the ``ft`` loss implements
    (following the authors' Factor-Transfer-pytorch); both are kept, for the two code bases'
    numbers. Student and teacher channel counts may differ.

    Args:
        p1: power applied to the activations before the channel mean (default 2).
        p2: 1 (default): mean absolute difference of the two factors; otherwise the mean of the
            difference raised to this power.
        loss_weight: ``w``, multiplies the whole loss (200: RepDistiller's CIFAR script,
            ``-b 200``).

    Notes:
        Shapes: ``feat_student`` and ``feat_teacher`` ``(B, C, H, W)`` with equal batch sizes; the
        maps should be square (the pooling is to a square size), widths may differ; returns a
        scalar. Checked against RepDistiller (HobbitLong/RepDistiller ``distiller_zoo/FT.py``,
        ``FactorTransfer.forward``, commit b84f547), a library's variant, not the authors' code.
        RepDistiller's ``train_student.py`` feeds it the output of its ``Translator`` on the
        student's penultimate map and of the pre-trained ``Paraphraser``'s encoder on the
        teacher's; this loss owns neither module and compares the maps it is given.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{REPDISTILLER_CIFAR}:L23 (-a 0 -b 200)",
            note="after RepDistiller's 30-epoch paraphraser stage (train_student.py:L47, init_epochs)",
        ),
    }

    def __init__(self, p1: float = 2.0, p2: float = 1.0, loss_weight: float = 200.0):
        super().__init__()
        self.p1 = p1
        self.p2 = p2
        self.loss_weight = loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C_s, H_s, W_s) student map (or factor).
            feat_teacher: (B, C_t, H_t, W_t) teacher map (or factor).

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, feat_teacher)
        if feat_student.dim() != 4:
            raise ValueError(
                f"factor transfer takes (B, C, H, W) maps: student {tuple(feat_student.shape)} vs "
                f"teacher {tuple(feat_teacher.shape)}"
            )
        fs, ft = pool_to_smaller_square(feat_student, feat_teacher.detach())
        a_s, a_t = _factor(fs, self.p1), _factor(ft, self.p1)
        if a_s.shape != a_t.shape:
            raise ValueError(
                f"factor sizes differ after pooling: student {tuple(feat_student.shape)} vs "
                f"teacher {tuple(feat_teacher.shape)}"
            )
        diff = a_s - a_t
        value = diff.abs().mean() if self.p2 == 1 else diff.pow(self.p2).mean()
        return self.loss_weight * value
