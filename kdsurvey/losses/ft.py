"""Factor transfer ("Paraphrasing Complex Network: Network Compression via Factor Transfer", Kim, Park & Kwak, NeurIPS 2018; catalogue id ``kim2018paraphrasing``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs
from kdsurvey.losses._checks import check_leading_dims
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


class _Paraphraser(nn.Module):
    """Teacher paraphraser: 3-conv encoder to the factor, 3-deconv decoder (no BN, LeakyReLU 0.1),
    as in the authors' Factor-Transfer-pytorch ``Models/FeatureProjection.py``."""

    def __init__(self, channels: int, factor_channels: int):
        super().__init__()
        act = nn.LeakyReLU(0.1)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            act,
            nn.Conv2d(channels, factor_channels, 3, padding=1),
            act,
            nn.Conv2d(factor_channels, factor_channels, 3, padding=1),
            act,
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(factor_channels, factor_channels, 3, padding=1),
            act,
            nn.ConvTranspose2d(factor_channels, channels, 3, padding=1),
            act,
            nn.ConvTranspose2d(channels, channels, 3, padding=1),
            act,
        )


def _factor(x: Tensor) -> Tensor:
    return F.normalize(x.flatten(1), dim=1)


@register("ft", paper="kim2018paraphrasing")
class FT(DistillationLoss):
    r"""Factor transfer ("Paraphrasing Complex Network: Network Compression via Factor Transfer",
    Kim, Park & Kwak, NeurIPS 2018; catalogue id ``kim2018paraphrasing``).

    .. math::
        \mathcal{L} = w\,\frac{1}{B\,D}\Big\lVert \frac{F_S}{\lVert F_S\rVert_2} -
        \frac{F_T}{\lVert F_T\rVert_2}\Big\rVert_1,\qquad
        F_T = P_{enc}(T),\; F_S = \mathrm{Tr}(S)

    with the norms taken per sample over all ``D = C H W`` factor elements (paper: p = 1).

    Args:
        student_channels: the student's channel count, the input width of the student **translator**
            ``Tr`` (3 convs, LeakyReLU 0.1) that the loss owns when both channel counts are given.
            ``None`` (default): the inputs are already factors and no module is applied.
        teacher_channels: the teacher's channel count. With ``student_channels`` the loss owns the
            teacher **paraphraser** ``P`` (encoder/decoder of 3 conv / 3 transposed conv, LeakyReLU
            0.1, no BN, PyTorch default init); both produce ``round(rate * C_t)`` factor channels.
            The paraphraser is trained first, alone, with :meth:`reconstruction_loss` (L1
            reconstruction of the teacher feature, as the authors' ``train_Paraphraser.py``) and is
            frozen during distillation: its factor is detached in :meth:`forward`, so only the
            translator (and the student) learn from this loss.
        rate: paraphrase rate ``k`` (default 0.5).
        loss_weight: ``w`` = the paper's :math:`\beta` (500: the authors' ``--beta``).

    Notes:
        Shapes: ``feat_student`` and ``feat_teacher`` ``(B, ...)`` with the same number of elements per
        sample (factors ``(B, C_f, H, W)``); returns a scalar.

        Checked against the authors' Jangho-Kim/Factor-Transfer-pytorch (``utils.FT`` with
        ``nn.L1Loss`` in ``train_student.py``). RepDistiller's ``FactorTransfer`` uses an
        attention-style factor instead; it is a different loss and not reproduced.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar": Preset(
            source="Jangho-Kim/Factor-Transfer-pytorch@19cce26 train_student.py:L35 (--beta 500)",
            note="the paraphraser is first trained alone (train_Paraphraser.py)",
        ),
    }

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        rate: float = 0.5,
        loss_weight: float = 500.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.rate = rate
        pairs = channel_pairs(student_channels, teacher_channels)
        self.paraphraser = self.translator = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            c_f = max(1, int(round(c_t * rate)))
            self.paraphraser = _Paraphraser(c_t, c_f)
            act = nn.LeakyReLU(0.1)
            self.translator = nn.Sequential(
                nn.Conv2d(c_s, c_s, 3, padding=1),
                act,
                nn.Conv2d(c_s, c_f, 3, padding=1),
                act,
                nn.Conv2d(c_f, c_f, 3, padding=1),
                act,
            )

    def reconstruction_loss(self, feat_teacher: Tensor) -> Tensor:
        """Stage-1 objective of the paraphraser: mean |decoder(encoder(T)) - T|."""
        if self.paraphraser is None:
            raise ValueError("this FT loss has no paraphraser (built without channel sizes)")
        target = feat_teacher.detach()
        rec = self.paraphraser.decoder(self.paraphraser.encoder(target))
        return F.l1_loss(rec, target)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, feat_teacher)
        feat_teacher = feat_teacher.detach()
        if self.translator is not None:
            feat_student = self.translator(feat_student)
            with torch.no_grad():
                feat_teacher = self.paraphraser.encoder(feat_teacher)
        if feat_student[0].numel() != feat_teacher[0].numel():
            raise ValueError(
                f"factor sizes differ: student {tuple(feat_student.shape)} vs teacher "
                f"{tuple(feat_teacher.shape)}"
            )
        return self.loss_weight * F.l1_loss(_factor(feat_student), _factor(feat_teacher))
