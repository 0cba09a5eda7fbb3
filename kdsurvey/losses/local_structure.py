"""*Local structure consistency and pixel-correlation distillation for compact semantic segmentation* (Applied Intelligence 2023; catalogue id ``unknown2023local``), written from the abstract alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_dense, check_same_shape
from kdsurvey.losses._relations import position_affinity
from kdsurvey.losses.base import DistillationLoss, feature_example, score_maps_example
from kdsurvey.losses.registry import register


def local_ssim(x: Tensor, y: Tensor, window: int, c1: float, c2: float) -> Tensor:
    """Structural similarity of ``x`` and ``y`` (``(B, K, H, W)``) over every ``window`` x
    ``window`` patch (uniform weights, stride 1, no padding), per channel: ``(B, K, H', W')``."""
    mu_x, mu_y = F.avg_pool2d(x, window, 1), F.avg_pool2d(y, window, 1)
    var_x = F.avg_pool2d(x * x, window, 1) - mu_x * mu_x
    var_y = F.avg_pool2d(y * y, window, 1) - mu_y * mu_y
    cov = F.avg_pool2d(x * y, window, 1) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    structure = (2 * cov + c2) / (var_x + var_y + c2)
    return luminance * structure


@register("local_structure", paper="unknown2023local", evidence="abstract")
class LocalStructure(DistillationLoss):
    r"""*Local structure consistency and pixel-correlation distillation for compact semantic
    segmentation* (Applied Intelligence 2023; catalogue id ``unknown2023local``), LSCD.

    Two terms, as the abstract names them. **Local structure consistency** (patch-level
    knowledge): the structural similarity index (SSIM) between the teacher's and the student's
    class-probability maps :math:`P = \sigma(z/T)` over every :math:`k\times k` patch, with patch
    means :math:`\mu`, variances :math:`\sigma^2` and covariance :math:`\sigma_{st}` (uniform
    window, per class channel):

    .. math:: \mathrm{SSIM} = \frac{(2\mu_s\mu_t + c_1)(2\sigma_{st} + c_2)}
        {(\mu_s^2 + \mu_t^2 + c_1)(\sigma_s^2 + \sigma_t^2 + c_2)},\qquad
        \mathcal{L}_{ls} = 1 - \overline{\mathrm{SSIM}}

    **Pixel-correlation distillation** (global view): :math:`A_{ij} = \hat f_i^\top \hat f_j`,
    the cosine similarity of every two pixels of a feature map, matched to the teacher's:

    .. math:: \mathcal{L}_{pc} = \frac1B\sum_b \frac{1}{(HW)^2}\|A^t_b - A^s_b\|_F^2,\qquad
        \mathcal{L} = w_{ls}\,\mathcal{L}_{ls} + w_{pc}\,\mathcal{L}_{pc}

    Args:
        window: :math:`k`, the side of the square patches SSIM compares (3).
        temperature: :math:`T` softening the score maps before SSIM (1.0).
        c1: SSIM's luminance constant :math:`c_1` ((0.01 L)^2 with data range L = 1 for
            probabilities).
        c2: SSIM's contrast-structure constant :math:`c_2` ((0.03 L)^2).
        structure_weight: :math:`w_{ls}`, weight of the local structure term (1).
        correlation_weight: :math:`w_{pc}`, weight of the pixel-correlation term (1).

    Notes:
        Shapes: score maps ``(B, K, H, W)`` (same shape for student and teacher, both at least
        ``window`` pixels high and wide), feature maps ``(B, Cs, h, w)`` and ``(B, Ct, h, w)``
        (widths may differ); returns a scalar. The pixel-wise KD and cross-entropy a segmentation
        recipe adds are not part of this loss.

        Written from the abstract alone (no code, full text not found): it says that SSIM
        gives "local structural constraints between the outputs of teacher and student" over
        patches, and that pixel correlations capture "contextual dependencies between any two
        pixels of the feature maps in a global view". Inferred, not from the paper: SSIM on
        softmax probabilities rather than logits, the uniform 3x3 window, the constants, cosine
        similarity for the correlation, the squared (Frobenius) distance, both weights.
    """

    def __init__(
        self,
        window: int = 3,
        temperature: float = 1.0,
        c1: float = 0.01**2,
        c2: float = 0.03**2,
        structure_weight: float = 1.0,
        correlation_weight: float = 1.0,
    ):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.window = window
        self.temperature = temperature
        self.c1, self.c2 = c1, c2
        self.structure_weight = structure_weight
        self.correlation_weight = correlation_weight

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        feat_student: Tensor,
        feat_teacher: Tensor,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, K, H, W) student score maps (the segmentation output).
            logits_teacher: (B, K, H, W) teacher score maps.
            feat_student: (B, Cs, h, w) student feature map.
            feat_teacher: (B, Ct, h, w) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "LSCD score map")
        check_dense(feat_student, feat_teacher, "LSCD feature")
        if logits_student.dim() != 4 or min(logits_student.shape[2:]) < self.window:
            raise ValueError(
                f"score maps must be (B, K, H, W) with H, W >= window {self.window}: student "
                f"{tuple(logits_student.shape)}, teacher {tuple(logits_teacher.shape)}"
            )
        if feat_student.shape[0] != logits_student.shape[0]:
            raise ValueError(
                f"batch sizes differ: score maps {tuple(logits_student.shape)} vs features "
                f"{tuple(feat_student.shape)}"
            )
        p_s = F.softmax(logits_student / self.temperature, dim=1)
        p_t = F.softmax(logits_teacher.detach() / self.temperature, dim=1)
        structure = 1 - local_ssim(p_s, p_t, self.window, self.c1, self.c2).mean()
        diff = position_affinity(feat_teacher.detach()) - position_affinity(feat_student)
        correlation = diff.pow(2).mean(dim=(1, 2)).mean()
        return self.structure_weight * structure + self.correlation_weight * correlation

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        return {
            **score_maps_example(batch, dtype, generator, large),
            **feature_example(batch, dtype, generator, large),
        }
