"""*Double Similarity Distillation for Semantic Image Segmentation* (Feng et al., IEEE TIP 2021; catalogue id ``feng2021double``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_dense, check_same_length
from kdsurvey.losses.base import DistillationLoss, Preset, feature_example
from kdsurvey.losses.registry import register


@register("dsd", paper="feng2021double")
class DSD(DistillationLoss):
    r"""*Double Similarity Distillation for Semantic Image Segmentation* (Feng et al., IEEE TIP
    2021; catalogue id ``feng2021double``).

    **Pixel-wise similarity distillation (PSD)** on residual attention maps across layers: with
    :math:`a_l = \mathrm{norm}(\frac{1}{C_l}\sum_c f_{l,c}^2)` (flattened over positions, L2
    normalised) and :math:`r_{nm} = \mathrm{norm}(a_m - a_n)` for every pair of layers
    :math:`n < m` (:math:`P` pairs),

    .. math:: \mathcal{L}_{PSD} = \frac{1}{P}\sum_{n<m}\frac{1}{B\,HW}\|r^s_{nm} - r^t_{nm}\|_2^2

    **Category-wise similarity distillation (CSD)** on the class score map :math:`z` (the last
    list item), 2x2 average-pooled: :math:`q_k = \sigma(z_k/\tau)` over positions and the class
    correlation :math:`G = q q^\top \in \mathbb{R}^{K\times K}`:

    .. math:: \mathcal{L}_{CSD} = \frac{1}{BK^2}\|G^s - G^t\|_F^2, \qquad
        \mathcal{L} = w(\lambda_{p}\mathcal{L}_{PSD} + \lambda_{c}\mathcal{L}_{CSD})

    The authors did not release code; this follows the re-implementation in winycg/CIRKD
    ``losses/dsd.py`` (``CriterionDoubleSimKD``, by the CIRKD authors), whose training script
    passes [backbone feature, head feature, logits] as the lists and weights PSD by 1000 and CSD
    by 10 (the defaults here). Attention maps of layers with a different spatial size are
    bilinearly resized to the first layer's size (CIRKD assumes equal sizes). The paper's exact
    PSD form may differ from that re-implementation.

    Args:
        temperature: :math:`\tau` of the CSD spatial softmax (4).
        psd_weight: :math:`\lambda_p` (1000).
        csd_weight: :math:`\lambda_c` (10).
        loss_weight: ``w``.

    Notes:
        Shapes: ``feats_student``, ``feats_teacher``: lists of ``(B, C_l, H_l, W_l)`` maps, the last
        being the ``(B, K, h, w)`` class score map; student and teacher widths may differ except for
        the last item; returns a scalar. No adapter is needed for thinner students: PSD compares
        channel-averaged attention maps and CSD class score maps, and CIRKD's script builds none.
    """

    presets = {
        "cityscapes": Preset(
            source="winycg/CIRKD train_scripts/train_kd/train_dsd.sh (commit 05a2753): "
            "--lambda-psd 1000. --lambda-csd 10.; train_kd.py (commit 3169b74): task loss weight "
            "1, DSD on [s_outputs[-2], s_outputs[-1], s_outputs[0]]",
            note="A re-implementation by the CIRKD authors (the DSD authors released no code).",
        )
    }

    def __init__(
        self,
        temperature: float = 4.0,
        psd_weight: float = 1000.0,
        csd_weight: float = 10.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.psd_weight = psd_weight
        self.csd_weight = csd_weight
        self.loss_weight = loss_weight

    @staticmethod
    def _attentions(feats: Sequence[Tensor]) -> list[Tensor]:
        size = feats[0].shape[2:]
        maps = []
        for f in feats:
            a = f.pow(2).mean(dim=1, keepdim=True)
            if a.shape[2:] != size:
                a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            maps.append(F.normalize(a.flatten(1), dim=1))
        return maps

    def _psd(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        a_s, a_t = self._attentions(feats_student), self._attentions(feats_teacher)
        n = len(a_s)
        pairs = torch.triu_indices(n, n, offset=1).tolist()
        if not pairs[0]:
            return a_s[0].new_zeros(())
        stack_s, stack_t = torch.stack(a_s), torch.stack(a_t)  # (L, B, HW)
        r_s = F.normalize(stack_s[pairs[1]] - stack_s[pairs[0]], dim=2)
        r_t = F.normalize(stack_t[pairs[1]] - stack_t[pairs[0]], dim=2)
        return (r_s - r_t).pow(2).mean()

    def _csd(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        def correlation(z: Tensor) -> Tensor:
            q = F.softmax(F.avg_pool2d(z, 2, 2, ceil_mode=True).flatten(2) / self.temperature, 2)
            return q @ q.transpose(1, 2)

        return (correlation(logits_student) - correlation(logits_teacher)).pow(2).mean()

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        check_same_length(feats_student, feats_teacher)
        if not feats_student:
            raise ValueError("dsd needs at least one map (the class score map)")
        for s, t in zip(feats_student[:-1], feats_teacher[:-1], strict=True):
            check_dense(s, t, "features")
        z_s, z_t = feats_student[-1], feats_teacher[-1]
        if z_s.shape != z_t.shape:
            raise ValueError(
                f"dsd takes the class score maps (B, K, h, w) as the last item of feats_student "
                f"and feats_teacher, of one shape; got student {tuple(z_s.shape)} vs teacher "
                f"{tuple(z_t.shape)}: append the networks' outputs to the feature lists (e.g. "
                "providers={'feats_student': lambda ctx: [*ctx.feats_student, ctx.student_out]})"
            )
        teachers = [t.detach() for t in feats_teacher]
        psd = self._psd(feats_student, teachers)
        csd = self._csd(feats_student[-1], teachers[-1])
        return self.loss_weight * (self.psd_weight * psd + self.csd_weight * csd)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = feature_example(batch, dtype, generator, large, layers=2)
        n, _, h, w = out["feats_student"][0].shape
        classes = 19 if large else 5
        for role, scale in (("student", 1), ("teacher", 2)):
            z = torch.randn(n, classes, h, w, generator=generator, dtype=dtype) * scale
            out[f"feats_{role}"].append(z)
        return out
