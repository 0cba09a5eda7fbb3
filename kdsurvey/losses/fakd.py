"""Feature-augmented pixel-wise distillation ("FAKD: Feature Augmented Knowledge Distillation for Semantic Segmentation", Yuan et al., WACV 2024; catalogue id ``yuan2024fakd``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_leading_dims
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("fakd", paper="yuan2024fakd", evidence="paper")
class FAKD(DistillationLoss):
    r"""Feature-augmented pixel-wise distillation ("FAKD: Feature Augmented Knowledge Distillation
    for Semantic Segmentation", Yuan et al., WACV 2024; catalogue id ``yuan2024fakd``).

    The student's pre-classifier feature ``f`` is augmented along semantic directions,
    :math:`\tilde f = f + \delta`, :math:`\delta\sim\mathcal{N}(0, \lambda\Sigma_y)` (ISDA's
    class-conditional covariance), and the pixel-wise KD loss on the augmented logits
    :math:`W\tilde f + b` is replaced by its closed-form upper bound over infinitely many draws
    (Jensen's inequality, as in ISDA):

    .. math::
        \mathcal{L} = \frac{w\,T^2}{N}\sum_{n}\sum_{c} p^t_{n,c}\Big[\log p^t_{n,c} +
            \log\sum_k \exp\Big(\frac{z_{n,k}-z_{n,c}}{T} +
            \frac{\lambda}{2T^2}(w_k - w_c)^\top\Sigma_{y_n}(w_k - w_c)\Big)\Big]

    with :math:`p^t = \sigma(z^t/T)`. :math:`\lambda = 0` gives plain pixel-wise KD.

    Args:
        strength: :math:`\lambda` (default 0.5, ISDA's :math:`\lambda_0`; ISDA ramps it linearly
            over training, set the attribute to schedule it).
        temperature: ``T`` (default 1, pixel-wise KD in segmentation).
        ignore_index: label ignored when ``target`` is given (default 255): those pixels get no
            augmentation term and do not enter the covariance.
        loss_weight: ``w`` (default 1).

    Notes:
        Forward: ``feat_student`` ``(B, C, H, W)`` (input of the student's 1x1 classifier),
        ``logits_teacher`` ``(B, K, H, W)``, ``classifier_weight`` ``(K, C)`` or ``(K, C, 1, 1)`` and
        optional ``classifier_bias`` ``(K,)`` (the student head's parameters; gradient reaches them),
        optional ``target`` ``(B, H, W)`` labels at feature resolution (else the teacher's argmax
        gives the class :math:`y_n`). Returns a scalar.

        No code was released (the authors' repository is empty); written from the paper's description.
        Inferred, hence uncertain: the ISDA-style per-class form of the bound, the covariance taken from
        the student features of the current batch (detached; ISDA keeps a running estimate), and the
        mean over pixels. ``zero_at_match`` is False: the augmentation term is positive whenever
        :math:`\Sigma \neq 0`.
    """

    zero_at_match = False

    def __init__(
        self,
        strength: float = 0.5,
        temperature: float = 1.0,
        ignore_index: int = 255,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.strength, self.temperature = strength, temperature
        self.ignore_index, self.loss_weight = ignore_index, loss_weight

    def forward(
        self,
        feat_student: Tensor,
        logits_teacher: Tensor,
        classifier_weight: Tensor,
        classifier_bias: Tensor | None = None,
        target: Tensor | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map, the input of the teacher's
                classifier.
            logits_teacher: (B, C, H, W) teacher score maps.
            classifier_weight: (K, C) weight of the teacher's pixel classifier (a 1x1 conv
                flattened), used frozen.
            classifier_bias: (K,) bias of that classifier; ``None``: no bias.
            target: (B, H, W) int64 label map (255 = ignored).

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, logits_teacher)
        if feat_student.shape[2:] != logits_teacher.shape[2:]:
            raise ValueError(
                f"spatial sizes differ: student {tuple(feat_student.shape)} vs "
                f"teacher {tuple(logits_teacher.shape)}"
            )
        weight = classifier_weight.reshape(classifier_weight.shape[0], -1)
        k, c = weight.shape
        if c != feat_student.shape[1] or k != logits_teacher.shape[1]:
            raise ValueError(
                f"classifier_weight {tuple(classifier_weight.shape)} does not map "
                f"{tuple(feat_student.shape)} to {tuple(logits_teacher.shape)}"
            )
        t = self.temperature
        feats = feat_student.permute(0, 2, 3, 1).reshape(-1, c)  # (N, C)
        z = feats @ weight.t()
        if classifier_bias is not None:
            z = z + classifier_bias
        zt = logits_teacher.detach().permute(0, 2, 3, 1).reshape(-1, k)
        labels = zt.argmax(1) if target is None else target.reshape(-1)
        valid = labels != self.ignore_index
        onehot = F.one_hot(torch.where(valid, labels, 0), k).to(feats.dtype) * valid[:, None]
        # W Sigma_y W^T per class from detached features: covariance of g = W f within each class
        g = feats.detach() @ weight.t()  # (N, K); grad reaches W only
        count = onehot.sum(0).clamp_min(1.0)  # (K,)
        mean = onehot.t() @ g / count[:, None]  # (K, K)
        second = (onehot.t()[:, :, None] * g[None]).transpose(1, 2) @ g  # (K, K, K)
        cov = second / count[:, None, None] - mean[:, :, None] * mean[:, None, :]  # (K, K, K)
        diag = cov.diagonal(dim1=1, dim2=2)  # (K, K)
        quad = diag[:, :, None] + diag[:, None, :] - 2 * cov  # [y, c, k]
        quad = quad[torch.where(valid, labels, 0)] * valid[:, None, None]  # (N, K, K)
        scores = (z[:, None, :] - z[:, :, None]) / t + self.strength / (2 * t * t) * quad
        log_p_t = F.log_softmax(zt / t, dim=1)
        bound = (log_p_t.exp() * (log_p_t + torch.logsumexp(scores, dim=2))).sum(1)
        return self.loss_weight * t * t * bound.mean()

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, c, k, s = (64, 256, 19, 16) if large else (batch, 8, 5, 4)
        return {
            "feat_student": torch.randn(n, c, s, s, generator=generator, dtype=dtype),
            "logits_teacher": torch.randn(n, k, s, s, generator=generator, dtype=dtype) * 2,
            "classifier_weight": torch.randn(k, c, generator=generator, dtype=dtype) / c**0.5,
            "classifier_bias": torch.zeros(k, dtype=dtype),
        }
