"""Improved KL divergence loss, IKL-KD (Cui et al., NeurIPS 2024; ``cui2024decoupled``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset, logits_example
from kdsurvey.losses.registry import register


def _dkl_terms(z_s: Tensor, z_t: Tensor, weights: Tensor, temperature: float) -> tuple:
    r"""The two parts of the decoupled KL loss, per batch.

    ``wmse`` is :math:`\tfrac14\sum_b\sum_{m,n} w_{bm}w_{bn}((z^t_m-z^t_n)-(z^s_m-z^s_n))^2`
    computed in O(BC) from the identity
    :math:`\sum_{m,n}w_mw_n(e_m-e_n)^2 = 2S\sum_m w_m(e_m-\bar e)^2` with :math:`e=z^t-z^s`,
    :math:`S=\sum_m w_m`, :math:`\bar e=\sum_m w_me_m/S` (centring keeps it stable in float32).
    Also returns :math:`\sum_b S_b^2` (the sum of all pair weights, GKL's normaliser) and the
    soft-label cross-entropy :math:`-\frac1B\sum_b\sum_c\sigma(z^t/T)\log\sigma(z^s/T)`.
    """
    e = z_t - z_s
    s = weights.sum(1, keepdim=True)
    e_bar = (weights * e).sum(1, keepdim=True) / s
    wmse = 0.5 * (s.squeeze(1) * (weights * (e - e_bar) ** 2).sum(1)).sum()
    pair_weight_sum = (s.squeeze(1) ** 2).sum()
    p_t = F.softmax(z_t / temperature, dim=1)
    soft_ce = -(p_t * F.log_softmax(z_s / temperature, dim=1)).sum(1).mean()
    return wmse, pair_weight_sum, soft_ce


class _DKLBase(DistillationLoss):
    """Shared forward of IKL and GKL: weight vectors from the teacher or from a class prior."""

    zero_at_match = False  # the soft cross-entropy keeps the teacher's entropy
    gamma = 1.0
    normalise_by_weights = False

    def _weights(self, z_t: Tensor, class_prior: Tensor | None) -> Tensor:
        if self.gi:
            if class_prior is None:
                raise ValueError("gi=True needs class_prior, a (B, C) tensor of class priors")
            check_same_shape(class_prior, z_t, "class_prior and logits_teacher")
            s = class_prior.detach()
        else:
            s = F.softmax(z_t / self.t2, dim=1)
        return s.pow(self.gamma) if self.gamma != 1.0 else s

    def forward(
        self, logits_student: Tensor, logits_teacher: Tensor, class_prior: Tensor | None = None
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            class_prior: (B, C) class prior of each sample, a distribution over classes; needed
                when ``gi`` is True.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        z_t = logits_teacher.detach()
        weights = self._weights(z_t, class_prior)
        wmse, pair_sum, soft_ce = _dkl_terms(logits_student, z_t, weights, self.temperature)
        wmse = wmse / (pair_sum if self.normalise_by_weights else logits_student.shape[0])
        return self.loss_weight * (self.beta * wmse + self.alpha * soft_ce)


@register("ikl", paper="cui2024decoupled")
class IKL(_DKLBase):
    r"""Improved KL divergence loss, IKL-KD (Cui et al., NeurIPS 2024; ``cui2024decoupled``).

    KL is rewritten as a weighted MSE on pairwise logit differences plus a soft-label
    cross-entropy; IKL keeps the wMSE term active for the student (breaking KL's asymmetric
    optimisation) and may take its weights from class-wise global information:

    .. math:: \mathcal{L} = w\Big[\beta\,\frac{1}{4B}\sum_b\sum_{m,n} s_{bm}s_{bn}
              \big(\Delta z^t_{b,mn} - \Delta z^s_{b,mn}\big)^2
              - \alpha\,\frac1B\sum_b \sigma(z^t_b/T)^\top\log\sigma(z^s_b/T)\Big]

    with :math:`\Delta z_{mn} = z_m - z_n`, :math:`s_b = \sigma(z^t_b/T_2)` (``gi=False``) or the
    class prior row of sample ``b`` (``gi=True``).

    Args:
        temperature: ``T`` of the soft cross-entropy (4.0; 1.0 on ImageNet).
        alpha: soft cross-entropy weight (1.0).
        beta: wMSE weight (8.0; {4, 8, 12} on CIFAR).
        t2: temperature of the teacher softmax giving the weights when ``gi=False`` (100.0).
        gi: use ``class_prior`` ("global information") for the weights (False; True on ImageNet).
        loss_weight: ``w`` (1; ramped in over the official 20 warm-up epochs).

    Notes:
        Shapes: ``(B, C)`` logits; optional ``class_prior`` ``(B, C)`` (the trainer builds it as
        ``onehot(target) @ prior`` from per-class mean teacher probabilities), required iff ``gi``.
        Scalar. Checked against jiequancui/DKL ``DKLv1/KD-dkl/mdistiller/distillers/IKL_KD.py::
        dkl_loss``: the second term is a cross-entropy (includes the teacher entropy) with no
        :math:`T^2`; the wMSE is evaluated in O(BC) instead of building the ``(B, C, C)`` tensors.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="jiequancui/DKL@c5e8ad2 DKLv1/KD-dkl/configs/cifar100/ikl_kd/res32x4_res8x4.yaml:L18-23 (ALPHA 1, "
            "BETA 8, T 4, WARMUP 20); DKLv1/KD-dkl/mdistiller/engine/cfg.py:L174, L178 (CE_WEIGHT 1, "
            "T2 100)",
            warmup_epochs=20,
        ),
        "imagenet": Preset(
            source="jiequancui/DKL@c5e8ad2 DKLv1/KD-dkl/configs/imagenet/r34_r18/ikl_kd.yaml:L27-31 (BETA 0.5, GI, T2 1); "
            "DKLv1/KD-dkl/mdistiller/engine/cfg.py:L172, L175 (WARMUP 1, T 1)",
            kwargs={"temperature": 1.0, "beta": 0.5, "gi": True, "t2": 1.0},
            warmup_epochs=1,
        ),
    }

    def __init__(
        self,
        temperature: float = 4.0,
        alpha: float = 1.0,
        beta: float = 8.0,
        t2: float = 100.0,
        gi: bool = False,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.alpha, self.beta = alpha, beta
        self.t2, self.gi = t2, gi
        self.loss_weight = loss_weight


@register("gkl", paper="cui2024decoupled")
class GKL(_DKLBase):
    r"""Generalized KL divergence loss, GKL-KD (Cui et al.; DKL v2 of ``cui2024decoupled``).

    As :class:`IKL`, but the weight vectors are raised to a power and the wMSE is normalised by
    the total pair weight of the batch rather than by the batch size:

    .. math:: \mathcal{L} = w\Big[\beta\,\frac{\tfrac14\sum_b\sum_{m,n} s^\gamma_{bm}s^\gamma_{bn}
              (\Delta z^t_{b,mn} - \Delta z^s_{b,mn})^2}{\sum_b\sum_{m,n}s^\gamma_{bm}s^\gamma_{bn}}
              - \alpha\,\frac1B\sum_b \sigma(z^t_b/T)^\top\log\sigma(z^s_b/T)\Big]

    Args:
        temperature: ``T`` (4.0).
        alpha: soft CE weight (1.0).
        beta: wMSE weight (16.0).
        gamma: exponent of the weight vectors (0.05 on CIFAR res32x4->res8x4; 0.6 on ImageNet).
        t2: teacher-softmax temperature for the weights when ``gi=False`` (4.0).
        gi: use ``class_prior`` for the weights (True).
        loss_weight: ``w`` (1; ramped in over the official 20 warm-up epochs).

    Notes:
        Shapes and checks as :class:`IKL`; ``class_prior`` is required with the default ``gi=True``.
        Checked against jiequancui/DKL ``DKLv2/KD-dkl/mdistiller/distillers/GKL_KD.py::dkl_loss``.
    """

    normalise_by_weights = True

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="jiequancui/DKL@c5e8ad2 DKLv2/KD-dkl/cifar100_config_gkl/res32x4_res8x4.yaml:L18-26; "
            "DKLv2/KD-dkl/mdistiller/engine/cfg.py:L174 (CE_WEIGHT 1)",
            warmup_epochs=20,
        ),
        "imagenet": Preset(
            source="jiequancui/DKL@c5e8ad2 DKLv2/KD-dkl/imagenet_config_gkl/r34_r18_gkl_kd.yaml:L27-32 (BETA 0.5, "
            "GAMMA 0.6, T2 1); DKLv2/KD-dkl/mdistiller/engine/cfg.py:L172, L175 (WARMUP 5, T 1)",
            kwargs={"temperature": 1.0, "beta": 0.5, "gamma": 0.6, "t2": 1.0},
            warmup_epochs=5,
        ),
    }

    def __init__(
        self,
        temperature: float = 4.0,
        alpha: float = 1.0,
        beta: float = 16.0,
        gamma: float = 0.05,
        t2: float = 4.0,
        gi: bool = True,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.alpha, self.beta = alpha, beta
        self.gamma = gamma
        self.t2, self.gi = t2, gi
        self.loss_weight = loss_weight

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = logits_example(batch, dtype, generator, large)
        n, c = out["logits_teacher"].shape
        prior = torch.randn(n, c, generator=generator, dtype=dtype)
        out["class_prior"] = F.softmax(prior, dim=1)
        return out
