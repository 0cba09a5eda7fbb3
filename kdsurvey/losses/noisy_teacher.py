"""Distilling knowledge from noisy teachers (Sau & Balasubramanian, 2016; ``sau2016deep``)."""

from __future__ import annotations

import torch
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("noisy_teacher", paper="sau2016deep", evidence="paper")
class NoisyTeacher(DistillationLoss):
    r"""Distilling knowledge from noisy teachers (Sau & Balasubramanian, 2016; ``sau2016deep``).

    The student regresses the teacher's logits (Ba & Caruana's L2 logit matching); in training,
    each sample is picked with probability :math:`\alpha` and its teacher logits are perturbed
    multiplicatively with Gaussian noise, which acts like learning from several teachers:

    .. math:: \tilde z^t_b = (1 + m_b\,\xi_b)\,z^t_b,\quad m_b\sim\mathrm{Bernoulli}(\alpha),\
              \xi_b\sim\mathcal{N}(0,\sigma^2),\qquad
              \mathcal{L} = w\,\frac{1}{2B}\sum_b \lVert z^s_b - \tilde z^t_b\rVert_2^2

    Args:
        noise_std: ``sigma``, std of the multiplicative noise (0.9).
        noise_prob: ``alpha``, probability that a sample's teacher logits are perturbed (0.5).
        seed: when given, the noise comes from a private ``torch.Generator`` seeded with it (created
            on the input's device on first use); otherwise from torch's global RNG, so
            ``torch.manual_seed`` makes it reproducible.
        loss_weight: ``w``.

    Notes:
        Shapes: ``(B, C)`` logits; scalar. In ``eval()`` mode no noise is added (plain L2 logit
        regression, 0 when the logits match). In training mode the loss is random: it is not zero
        when student equals teacher and depends on the batch order (the noise is drawn per position).

        No official code exists. The noise model (one scalar :math:`\xi_b` per sample, shared by all
        classes, ``z' = (1 + xi) z``), the per-sample selection and the ``1/(2B)`` L2 reduction follow
        the paper's description and the third-party TensorFlow re-implementation
        chengshengchan/model_compression (``--noisy``), whose defaults (ratio 0.5, sigma 0.9) are
        used here; that code multiplies by the noise alone (its ``1 +`` is commented out), which is
        taken to be a bug. The exact defaults of the paper are uncertain.
    """

    zero_at_match = False  # the perturbed teacher differs from the clean one in training mode
    batch_invariant = False  # noise is drawn per batch position

    def __init__(
        self,
        noise_std: float = 0.9,
        noise_prob: float = 0.5,
        seed: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.noise_std = noise_std
        self.noise_prob = noise_prob
        self.seed = seed
        self.loss_weight = loss_weight
        self._generator: torch.Generator | None = None

    def _rng(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        z_t = logits_teacher.detach()
        if self.training and self.noise_std > 0 and self.noise_prob > 0:
            b = z_t.shape[0]
            gen = self._rng(z_t.device)
            pick = torch.rand(b, 1, generator=gen, device=z_t.device) < self.noise_prob
            xi = torch.randn(b, 1, generator=gen, device=z_t.device, dtype=z_t.dtype)
            z_t = z_t * (1 + self.noise_std * xi * pick.to(z_t.dtype))
        sq = (logits_student - z_t).pow(2).sum(1)
        return self.loss_weight * 0.5 * sq.mean()
