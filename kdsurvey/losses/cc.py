"""Correlation Congruence (Peng et al., ICCV 2019; catalogue id ``peng2019correlation``, "Correlation Congruence for Knowledge Distillation")."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from kdsurvey.losses._checks import check_same_batch
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses.base import DistillationLoss, Preset, embedding_example
from kdsurvey.losses.registry import register


@register("cc", paper="peng2019correlation")
class CC(DistillationLoss):
    r"""Correlation Congruence (Peng et al., ICCV 2019; catalogue id ``peng2019correlation``,
    "Correlation Congruence for Knowledge Distillation").

    Correlation matrices of the embedded batch, :math:`C_{ij} = k(f_i, f_j)` with the bilinear
    kernel :math:`f_i\cdot f_j` or the P-order Taylor expansion of the Gaussian RBF
    :math:`e^{-2\gamma}\sum_{p=0}^{P}\frac{(2\gamma)^p}{p!}(f_i\cdot f_j)^p`, and

    .. math:: \mathcal{L} = \frac{w}{B^2}\,\|C^s - C^t\|_F

    (not squared; no :math:`1/B^2` unless ``reduction="batchmean"``).

    Args:
        kernel: ``"gaussian"`` (default) or ``"bilinear"``.
        gamma: Gaussian kernel parameter :math:`\gamma` (0.4).
        max_p: Taylor order :math:`P` (2).
        reduction: ``"batchmean"`` divides by :math:`B^2`; anything else does not.
        student_channels: the student's flattened feature width. With ``teacher_channels`` the loss
            owns the paper's linear embeddings (``nn.Linear(C, embed_dim)``, PyTorch default init)
            for each network, as torchdistill's ``Linear4CCKD`` wrappers do. ``None`` (default): the
            inputs are already embedded.
        teacher_channels: the teacher's flattened feature width, the input width of the teacher's
            embedding. Give it together with ``student_channels``, or leave both ``None``.
        embed_dim: width of those embeddings (128).
        loss_weight: ``w``, multiplies the whole loss (0.003, torchdistill's ImageNet config).

    Notes:
        Shapes: ``feat_student`` ``(B, D_s)``, ``feat_teacher`` ``(B, D_t)``; returns a scalar.
        Checked against torchdistill ``CCKDLoss`` (``torchdistill/losses/mid_level.py``). RepDistiller's
        ``distiller_zoo/CC.py`` computes a different quantity; the default follows torchdistill, which
        matches the paper's equations.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="yoshitomo-matsubara/torchdistill@3e4373c "
            "configs/sample/ilsvrc2012/cckd/resnet18_from_resnet50.yaml:L166-181 (CE via KDLoss "
            "alpha 0 at weight 1; CCKDLoss gaussian, gamma 0.4, max_p 2, batchmean, weight 0.003)",
            note="a library's sample config: the CC authors released no code",
        ),
    }

    def __init__(
        self,
        kernel: str = "gaussian",
        gamma: float = 0.4,
        max_p: int = 2,
        reduction: str = "batchmean",
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        embed_dim: int = 128,
        loss_weight: float = 0.003,
    ):
        super().__init__()
        if kernel not in ("gaussian", "bilinear"):
            raise ValueError(f"kernel must be 'gaussian' or 'bilinear', got {kernel!r}")
        self.kernel, self.gamma, self.max_p, self.reduction = kernel, gamma, max_p, reduction
        self.loss_weight = loss_weight
        self.embed_s = self.embed_t = None
        if student_channels is not None and teacher_channels is not None:
            self.embed_s = nn.Linear(student_channels, embed_dim)
            self.embed_t = nn.Linear(teacher_channels, embed_dim)

    def correlation(self, f: Tensor) -> Tensor:
        dot = f @ f.t()
        if self.kernel == "bilinear":
            return dot
        terms = sum(
            (2 * self.gamma) ** p / math.factorial(p) * dot.pow(p) for p in range(1, self.max_p + 1)
        )
        return math.exp(-2 * self.gamma) * (1 + terms)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, D) student embeddings.
            feat_teacher: (B, D) teacher embeddings.

        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "CC embedding")
        f_s, f_t = flatten_samples(feat_student), flatten_samples(feat_teacher.detach())
        if self.embed_s is not None:
            f_s, f_t = self.embed_s(f_s), self.embed_t(f_t)
        loss = torch.linalg.vector_norm(self.correlation(f_s) - self.correlation(f_t))
        if self.reduction == "batchmean":
            loss = loss / f_s.shape[0] ** 2
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = embedding_example(batch, dtype, generator, large)
        return {k: v / math.sqrt(v.shape[1]) for k, v in out.items()}
