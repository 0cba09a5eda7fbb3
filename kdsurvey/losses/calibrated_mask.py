"""Similarity KD with a calibrated mask (Wang et al., ICASSP 2024; catalogue id ``wang2024similarity``, "Similarity Knowledge Distillation with Calibrated Mask")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import MLPEmbed, apply_classifier, softmax_weighted_sum
from kdsurvey.losses._checks import check_same_batch, check_same_shape, tensor_list
from kdsurvey.losses._kl import kl_to_probs
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("calibrated_mask", paper="wang2024similarity", evidence="abstract")
class CalibratedMaskSimilarity(DistillationLoss):
    r"""Similarity KD with a calibrated mask (Wang et al., ICASSP 2024; catalogue id
    ``wang2024similarity``, "Similarity Knowledge Distillation with Calibrated Mask").

    *Calibrated mask*: :math:`m_i = [\arg\max z^t_i = y_i]` removes the samples the teacher gets
    wrong. *Sample similarity*: each student stage :math:`l` is reduced to its channel-mean map,
    embedded (MLP + L2 normalisation) into the teacher's penultimate space and classified by the
    frozen teacher classifier :math:`W`; the resulting logits :math:`u^l_i` are compared with every
    teacher logit vector, :math:`S^l = \mathrm{softmax}_{i}(u^l_i\cdot z^t_j)`, and :math:`S^l`
    should be the identity. *Process*: the stages are combined with weights given by the softmax
    of their (detached) losses.

    .. math::
        \mathcal{L} = w\Big[\lambda_{kd}\frac{T^2}{\sum_i m_i}\sum_i m_i\,
        \mathrm{KL}(\sigma(z^t_i/T)\|\sigma(z^s_i/T)) + \lambda_{s}\sum_l
        \operatorname{softmax}_l(\mathrm{sg}\,\ell_l)\,\ell_l\Big],\quad
        \ell_l=\mathrm{MSE}(S^l, I)

    with masked samples' stage features set to zero (as in the reference code) before embedding.

    Args:
        temperature: :math:`T` (4).
        kd_weight: :math:`\lambda_{kd}` (1).
        sim_weight: :math:`\lambda_s` (10, the reference script's ``-b``).
        stage_sizes: spatial size :math:`H_l W_l` of each student stage. With ``teacher_dim`` the
            loss owns one MLP (``Linear(HW, 2D)-ReLU-Linear(2D, D)``, PyTorch default init) per
            stage. ``None`` (default): the channel-mean map is used directly and :math:`HW` must
            equal :math:`D`.
        teacher_dim: :math:`D`, the input width of the teacher's classifier: the width every stage
            MLP maps to.
        loss_weight: ``w`` (1: the script's ``-b`` is ``sim_weight``).

    Notes:
        Shapes: ``logits_student``/``logits_teacher`` ``(B, K)``, ``target`` ``(B,)``,
        ``feats_student`` a list of ``(B, C_l, H_l, W_l)``, ``classifier_teacher`` the teacher's final
        ``nn.Linear`` (or its ``(K, D)`` weight, or ``(weight, bias)``), used frozen. The paper's code
        is not public; this follows the public repository BTAEYANG/initialDemo (``paper/GKD.py`` and
        ``paper/GSKD.py``), whose guided-KD mask and guided-similarity loss implement the three modules
        the abstract names; it is not confirmed to be the authors' code. Differences: masked features
        get no gradient here (the reference zeroes them through ``.data``); with no correct teacher
        prediction the KD term is 0 instead of NaN; that script's default ``--reverse`` flag (a truthy
        string) pairs the softmax weights with the reversed loss list, which is not reproduced.
        ``zero_at_match`` is False: the similarity target is the identity, not the teacher.
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="BTAEYANG/initialDemo@dcea892 train_student.py:L70-72, L87 (-r 1, -b 10, --kd_T 4)",
            note="a public repository that matches the paper, not confirmed as the authors' code",
        ),
    }

    def __init__(
        self,
        temperature: float = 4.0,
        kd_weight: float = 1.0,
        sim_weight: float = 10.0,
        stage_sizes: Sequence[int] | None = None,
        teacher_dim: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature, self.kd_weight, self.sim_weight = temperature, kd_weight, sim_weight
        self.loss_weight = loss_weight
        self.embeds = None
        if stage_sizes is not None and teacher_dim is not None:
            self.embeds = nn.ModuleList(MLPEmbed(hw, teacher_dim) for hw in stage_sizes)

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
        feats_student: Sequence[Tensor],
        classifier_teacher: Any,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            target: (B,) int64 class labels.
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            classifier_teacher: the teacher's frozen final ``nn.Linear``, or its (K, D) weight,
                or ``(weight, bias)``.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        feats = tensor_list(feats_student)
        for f in feats:
            check_same_batch(f, logits_teacher, "stage feature/teacher logits")
        if self.embeds is not None and len(self.embeds) != len(feats):
            raise ValueError(f"{len(feats)} stages but {len(self.embeds)} embeddings")
        z_t, t = logits_teacher.detach(), self.temperature
        mask = (z_t.argmax(1) == target).to(logits_student)
        count = mask.sum()
        kl = kl_to_probs(logits_student, F.softmax(z_t / t, dim=1), t)
        kd = t * t * (mask * kl).sum() / count.clamp(min=1)
        eye = torch.eye(z_t.shape[0], dtype=z_t.dtype, device=z_t.device)
        stage_losses = []
        for k, f in enumerate(feats):
            v = flatten_samples(f.mean(1)) * mask.unsqueeze(1)
            e = F.normalize(self.embeds[k](v) if self.embeds is not None else v, dim=1)
            u = apply_classifier(e, classifier_teacher)
            stage_losses.append(F.mse_loss(F.softmax(u @ z_t.t(), dim=0), eye))
        loss = self.kd_weight * kd
        if stage_losses:
            loss = loss + self.sim_weight * softmax_weighted_sum(stage_losses)
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, c, k, hw = (64, 256, 100, 16) if large else (batch, 8, 10, 4)

        def r(*s):
            return torch.randn(*s, generator=generator, dtype=dtype)

        z_t = 4 * r(n, k)
        target = z_t.argmax(1)
        target[-1] = (target[-1] + 1) % k  # one sample the teacher gets wrong
        return {
            "logits_student": r(n, k),
            "logits_teacher": z_t,
            "target": target,
            "feats_student": [r(n, c, hw, hw), r(n, 2 * c, hw, hw)],
            "classifier_teacher": r(k, hw * hw) / hw,
        }
