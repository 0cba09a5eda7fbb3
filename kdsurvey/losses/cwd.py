"""Channel-wise distillation ("Channel-wise Knowledge Distillation for Dense Prediction", Shu et al., ICCV 2021; catalogue id ``shu2021channel``)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("cwd", paper="shu2021channel")
class CWD(DistillationLoss):
    r"""Channel-wise distillation ("Channel-wise Knowledge Distillation for Dense Prediction", Shu
    et al., ICCV 2021; catalogue id ``shu2021channel``).

    With ``norm_type="channel"`` each channel is turned into a distribution over its positions,

    .. math::
        \phi(y_c) = \mathrm{softmax}_{i}(y_{c,i}/T),\qquad
        \mathcal{L} = w\,\frac{T^2}{N C}\sum_{n,c}\sum_i \phi(y^T_{c})_i
        \log\frac{\phi(y^T_c)_i}{\phi(y^S_c)_i}

    Args:
        norm_type: ``"channel"`` (softmax over positions, divide by ``N C``), ``"spatial"`` (softmax
            over channels at each position, divide by ``N H W``) or ``"channel_mean"`` (per-channel
            spatial mean, no softmax, divide by ``N C``). Default ``"channel"``.
        divergence: ``"kl"`` (summed KL, teacher as target) or ``"mse"`` (summed squared error, with
            the temperature forced to 1 as in the official code). Default ``"kl"``.
        temperature: ``T`` (default 4), used with ``"kl"`` only.
        loss_weight: ``w`` = :math:`\lambda` (3, the README's Cityscapes run).

    Notes:
        Shapes: ``feat_student``, ``feat_teacher`` ``(N, C, H, W)`` of equal shape (logit maps or
        already aligned features); returns a scalar.

        Checked against irfanICMLL/TorchDistiller ``SemSeg-distill/utils/criterion.py``
        (``CriterionCWD``; cross-checked with winycg/CIRKD ``losses/cwd.py``). The official
        ``norm_type="none"`` branch reads only the first sample of the batch, a bug not reproduced (the
        option is rejected). ``channel_mean`` with ``kl`` takes the log of the raw means, as the
        official code (undefined for negative means).
    """

    _NORMS = ("channel", "spatial", "channel_mean")

    presets: ClassVar[dict[str, Preset]] = {
        "cityscapes": Preset(
            source="irfanICMLL/TorchDistiller@78bac7c SemSeg-distill/README.md:L78 (exp_cwd.sh "
            "channel kl 3 4: norm channel, divergence kl, lambda 3, T 4)",
        ),
    }

    def __init__(
        self,
        norm_type: str = "channel",
        divergence: str = "kl",
        temperature: float = 4.0,
        loss_weight: float = 3.0,
    ):
        super().__init__()
        if norm_type not in self._NORMS:
            raise ValueError(f"norm_type must be one of {self._NORMS}, got {norm_type!r}")
        if divergence not in ("kl", "mse"):
            raise ValueError(f"divergence must be 'kl' or 'mse', got {divergence!r}")
        self.norm_type = norm_type
        self.divergence = divergence
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_same_shape(feat_student, feat_teacher, "feature")
        n, c, h, w = feat_student.shape
        t = self.temperature if self.divergence == "kl" else 1.0
        s = feat_student / t
        tt = feat_teacher.detach() / t
        kl = self.divergence == "kl"
        if self.norm_type == "channel":
            dim, denom = -1, n * c
            s, tt = s.flatten(2), tt.flatten(2)
        elif self.norm_type == "spatial":
            dim, denom = 1, n * h * w
        else:
            dim, denom = None, n * c
            s, tt = s.flatten(2).mean(-1), tt.flatten(2).mean(-1)
        if dim is not None:
            p_t = tt.softmax(dim)
            s = s.log_softmax(dim) if kl else s.softmax(dim)
        else:
            p_t = tt
            s = s.log() if kl else s
        criterion = F.kl_div if kl else F.mse_loss
        loss = criterion(s, p_t, reduction="sum")
        return self.loss_weight * loss / denom * (t * t)
