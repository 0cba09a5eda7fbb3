"""Knowledge adaptation with affinity distillation ("Knowledge Adaptation for Efficient Semantic Segmentation", He et al., CVPR 2019; catalogue id ``he2019knowledge``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import apply_optional, channel_pairs, conv_bn_relu
from kdsurvey.losses._checks import check_leading_dims, check_same_shape
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


def _position_affinity(feat: Tensor) -> Tensor:
    """Cosine affinity between every pair of positions, divided by their number: (B, HW, HW)."""
    v = F.normalize(feat.flatten(2), dim=1)
    return v.transpose(1, 2) @ v / v.shape[-1]


class _KATranslator(nn.Module):
    """Autoencoder of KA: three 3x3 convs down to ``latent`` channels, three 3x3 transposed convs
    back (stride 1, ReLU between layers, linear latent; no BN, so the frozen encoder keeps no
    running statistics)."""

    def __init__(self, channels: int, latent: int):
        super().__init__()
        mid = max(latent, (channels + latent) // 2)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, mid, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(mid, latent, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(latent, mid, 3, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(mid, mid, 3, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(mid, channels, 3, padding=1),
        )


@register("ka", paper="he2019knowledge", evidence="paper")
class KA(DistillationLoss):
    r"""Knowledge adaptation with affinity distillation ("Knowledge Adaptation for Efficient
    Semantic Segmentation", He et al., CVPR 2019; catalogue id ``he2019knowledge``).

    A pre-trained, then frozen, autoencoder ``E``/``D`` translates the teacher feature into a
    compact latent; a feature adapter ``C_f`` maps the student to it, and an affinity adapter
    ``C_a`` makes the student's non-local (position-to-position) affinities match the teacher's:

    .. math::
        \mathcal{L}_{adapt} = \frac{1}{|I|}\sum_{j\in I}\Big\lVert
            \frac{C_f(\Phi_s)_j}{\lVert C_f(\Phi_s)_j\rVert_q} -
            \frac{E(\Phi_t)_j}{\lVert E(\Phi_t)_j\rVert_q}\Big\rVert_p,\qquad
        A_{ij} = \frac{1}{HW}\frac{\phi_i^\top\phi_j}{\lVert\phi_i\rVert_2\lVert\phi_j\rVert_2}

    .. math::
        \mathcal{L}_{aff} = \frac{1}{HW}\sum_i \big\lVert A_i(C_a(\Phi_s)) - A_i(E(\Phi_t))
        \big\rVert_2,\qquad
        \mathcal{L} = w\,(\beta\,\mathcal{L}_{adapt} + \gamma\,\mathcal{L}_{aff})

    averaged over the batch (``j``, ``i`` index positions; :math:`A_i` is row ``i``). Stage 1 trains
    the autoencoder alone with :meth:`reconstruction_loss`,
    :math:`\lVert\Phi_t - D(E(\Phi_t))\rVert^2 + \alpha\lVert E(\Phi_t)\rVert_1`.

    Args:
        student_channels: the student's channel count, the input width of the two student adapters
            ``C_f``, ``C_a`` (3x3 conv, stride 1, BN, ReLU, as the paper describes ``C_f``; PyTorch
            default init) that the loss owns when both channel counts are given. ``None`` (default):
            ``feat_student`` is the adapted student feature (used for both terms).
        teacher_channels: the teacher's channel count, the input width of the autoencoder the loss
            then owns (down to ``latent_channels``). ``None`` (default): ``feat_teacher`` is the
            already translated :math:`E(\Phi_t)`.
        latent_channels: latent width of the autoencoder (default ``teacher_channels // 2``).
        adapt_weight: :math:`\beta` (default 50, paper).
        affinity_weight: :math:`\gamma` (default 1, paper).
        p: norm of the difference (default 1);
        q: norm that normalises each vector (default 2). The paper only says p and q are different
            norms; p=1, q=2 follows torchdistill.
        sparsity: :math:`\alpha` of the autoencoder's L1 term (default 1e-7, paper).
        loss_weight: ``w`` (default 1).

    Notes:
        Shapes: ``feat_student`` ``(B, C_s, H, W)``, ``feat_teacher`` ``(B, C_t, H, W)``; student and
        (translated) teacher must have the same spatial size. Returns a scalar.

        No official code exists; written from the paper. Inferred, hence uncertain: the normalisation is
        taken per position (the paper indexes position pairs; torchdistill's ``KTALoss`` normalises
        the whole flattened map instead), :math:`|A|` is read as the number of rows, and the autoencoder
        keeps the spatial size (the paper's strided layers are not specified enough to copy; resize
        inputs beforehand). The encoder runs without gradient: the paper freezes it after stage 1.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        latent_channels: int | None = None,
        adapt_weight: float = 50.0,
        affinity_weight: float = 1.0,
        p: float = 1.0,
        q: float = 2.0,
        sparsity: float = 1e-7,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.adapt_weight, self.affinity_weight = adapt_weight, affinity_weight
        self.p, self.q, self.sparsity, self.loss_weight = p, q, sparsity, loss_weight
        self.translator = self.feature_adapter = self.affinity_adapter = None
        pairs = channel_pairs(student_channels, teacher_channels)
        if pairs is not None:
            ((c_s, c_t),) = pairs
            latent = latent_channels or max(1, c_t // 2)
            self.translator = _KATranslator(c_t, latent)
            self.feature_adapter = conv_bn_relu(c_s, latent, kernel=3)
            self.affinity_adapter = conv_bn_relu(c_s, latent, kernel=3)

    def reconstruction_loss(self, feat_teacher: Tensor) -> Tensor:
        """Stage-1 objective of the autoencoder (mean squared reconstruction + L1 sparsity)."""
        if self.translator is None:
            raise RuntimeError("KA was built without channel sizes, so it has no autoencoder")
        hidden = self.translator.encoder(feat_teacher.detach())
        rec = self.translator.decoder(hidden)
        return F.mse_loss(rec, feat_teacher.detach()) + self.sparsity * hidden.abs().sum()

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, feat_teacher)
        target = feat_teacher.detach()
        if self.translator is not None:
            with torch.no_grad():
                target = self.translator.encoder(target)
        s_f = apply_optional(self.feature_adapter, feat_student)
        s_a = apply_optional(self.affinity_adapter, feat_student)
        check_same_shape(s_f, target, "adapted student and translated teacher feature")
        diff = F.normalize(s_f, p=self.q, dim=1) - F.normalize(target, p=self.q, dim=1)
        adapt = torch.linalg.vector_norm(diff, ord=self.p, dim=1).mean()
        aff_diff = _position_affinity(s_a) - _position_affinity(target)
        affinity = torch.linalg.vector_norm(aff_diff, dim=2).mean()
        return self.loss_weight * (self.adapt_weight * adapt + self.affinity_weight * affinity)
