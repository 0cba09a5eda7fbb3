"""Streamlined Knowledge Distillation (Jeong et al., CVPR 2026; catalogue id
``jeong2026streamlined``): an instance term (KL) and a direction term (Mahalanobis distance
between Gram matrices of L2-normalised logits)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses._kl import kl_of_logits
from kdsurvey.losses._relations import cosine_matrix
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def median_fraction(values: Tensor) -> Tensor:
    """The fraction of ``values`` (1-D) at or below their median, the median interpolated
    linearly between the two middle values as ``numpy.percentile(values, 50)`` does:
    ``ceil(n/2)/n`` when no two values tie."""
    return (values <= torch.quantile(values, 0.5)).to(values.dtype).mean()


def mahalanobis_rows(diff: Tensor, tikhonov: float) -> Tensor:
    r"""Per-row Mahalanobis norms :math:`\sqrt{d_i^\top(\Sigma+\lambda I)^{-1}d_i}` of the rows
    :math:`d_i` of ``diff`` ``(B, D)``, with :math:`\Sigma` the unbiased covariance of the columns
    over the rows and :math:`\lambda` = ``tikhonov`` > 0 (inverted through a Cholesky factor)."""
    cov = torch.cov(diff.t())
    cov = cov + tikhonov * torch.eye(cov.shape[0], dtype=diff.dtype, device=diff.device)
    inv = torch.cholesky_inverse(torch.linalg.cholesky(cov))
    return torch.einsum("bi,ij,bj->b", diff, inv, diff).sqrt()


@register("streamlined_kd", paper="jeong2026streamlined")
class StreamlinedKD(DistillationLoss):
    r"""Streamlined Knowledge Distillation (Jeong et al., CVPR 2026; catalogue id
    ``jeong2026streamlined``).

    Two terms on the logits :math:`z \in \mathbb{R}^{B\times C}`. The instance term is KD's
    temperature-softened KL divergence. The direction term compares the batch's Gram matrices of
    L2-normalised logits, :math:`G = \hat z\hat z^\top/C` with :math:`\hat z_i = z_i/\|z_i\|_2`:
    each row :math:`D_i` of :math:`D = G^s - G^t` is measured in the Mahalanobis norm of the rows'
    own covariance :math:`\Sigma`, regularised (Tikhonov) to :math:`\Sigma + \lambda I`:

    .. math::
        \mathcal{L} = \alpha\,m_{ins}\,\frac{\tau^2}{B}\sum_{i=1}^{B}
        \mathrm{KL}\big(\sigma(z^t_i/\tau)\,\|\,\sigma(z^s_i/\tau)\big)
        + \beta\,m_{dir}\,\frac{1}{B}\sum_{i=1}^{B}\sqrt{D_i^\top(\Sigma+\lambda I)^{-1}D_i}

    :math:`m_{ins}` and :math:`m_{dir}` are the official code's median masks: it multiplies each
    term, already a batch mean, by a boolean mask (samples whose top teacher probability is at most
    the batch median; classes whose teacher probability summed over the batch is at most the
    median over classes) and averages, which scales the term by the fraction of entries at or
    below the median, :math:`\lceil n/2\rceil/n` without ties (about one half). ``median_masks``
    False sets both to 1.

    Args:
        temperature: :math:`\tau` of the instance term (official default 4).
        tikhonov: :math:`\lambda`, the Tikhonov regulariser added to the covariance of the Gram
            differences (official default 0.1).
        instance_weight: :math:`\alpha`, weight of the instance (KL) term. The official code
            multiplies both terms by one weight, 0.9 by default (used here) (label cross-entropy 0.1; its
            docstring gives 0.5 and 0.5 for ResNet32x4 to ResNet8x4); the paper adds the two
            terms with equal weight.
        direction_weight: :math:`\beta`, weight of the direction (Mahalanobis) term (0.9, the
            official code's one weight).
        median_masks: keep the official code's median-mask factors :math:`m_{ins}, m_{dir}`;
            False drops them (the paper's sum of the two terms).

    Notes:
        Shapes: ``logits_student`` and ``logits_teacher`` ``(B, C)`` with ``B >= 2`` (the
        covariance is taken over the batch); returns a scalar. Checked against the authors' code,
        HyunJunSik/StreamLined ``Distiller/SKD.py::SKD.forward_train`` (commit
        745862882aaba69c9403a8fa562decaafbe03d35), its label cross-entropy left out;
        ``mdistiller/distillers/SKD.py`` there computes the same with weights 0.5 and 0.5.
        The paper's full text was not read here; its equations, as torchdistill's docstrings and a
        published summary quote them, differ from this code, and the code is followed: the KL
        term carries :math:`\tau^2`, the Gram matrices are divided by the number of classes
        ``C`` and the median masks scale both terms. torchdistill's ``SKDInstanceLoss`` and
        ``SKDDirectionLoss`` follow the paper's equations instead; they equal this loss with
        ``median_masks=False`` and ``instance_weight=1/τ², direction_weight=0``, respectively
        ``instance_weight=0, direction_weight=1, tikhonov=λ/C²`` (without the division by ``C``
        the covariance grows by ``C²``, so the same distance needs a regulariser ``C²`` times
        larger). At an exact match the direction term is 0 and its square root has no gradient
        (NaN), as in the official code.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="HyunJunSik/StreamLined@7458628 Distiller/SKD.py:L47 (temp 4, tik 0.1, ce 0.1, "
            "kd 0.9), L80-87 (kd weighs both terms)",
            task_weight=0.1,
            note="the same file's docstring (L51) gives ce 0.5 and kd 0.5 for ResNet32x4 to ResNet8x4",
        ),
    }

    def __init__(
        self,
        temperature: float = 4.0,
        tikhonov: float = 0.1,
        instance_weight: float = 0.9,
        direction_weight: float = 0.9,
        median_masks: bool = True,
    ):
        super().__init__()
        if tikhonov <= 0:
            raise ValueError(f"tikhonov must be positive, got {tikhonov}")
        self.temperature = temperature
        self.tikhonov = tikhonov
        self.instance_weight = instance_weight
        self.direction_weight = direction_weight
        self.median_masks = median_masks

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits, B >= 2.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        if logits_student.dim() != 2 or logits_student.shape[0] < 2:
            raise ValueError(
                f"logits must be (B, C) with B >= 2, got {tuple(logits_student.shape)}"
            )
        z_t = logits_teacher.detach()
        t = self.temperature
        instance = t * t * kl_of_logits(logits_student, z_t, t).mean()

        classes = logits_student.shape[1]
        diff = (cosine_matrix(logits_student) - cosine_matrix(z_t)) / classes
        direction = mahalanobis_rows(diff, self.tikhonov).mean()

        if self.median_masks:
            p_t = F.softmax(z_t, dim=1)
            instance = instance * median_fraction(p_t.max(dim=1).values)
            direction = direction * median_fraction(p_t.sum(dim=0))
        return self.instance_weight * instance + self.direction_weight * direction
