"""Similarity losses: the student matches relations between samples, layers or channels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses.base import (
    DistillationLoss,
    check_same_length,
    check_same_shape,
    feature_example,
    logits_example,
)
from kdsurvey.losses.registry import register

# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------


def _flat(x: Tensor) -> Tensor:
    """``(B, ...)`` -> ``(B, D)``."""
    return x.reshape(x.shape[0], -1)


def _flat3(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, C, HW)``."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _as_list(x: Tensor | Sequence[Tensor] | None) -> list[Tensor]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def check_same_batch(student: Tensor, teacher: Tensor, what: str = "student and teacher") -> None:
    """Raise ``ValueError`` naming both shapes when the batch sizes differ (other dims may)."""
    if student.dim() == 0 or teacher.dim() == 0 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{what} batch sizes differ: student {_shape(student)} vs teacher {_shape(teacher)}"
        )


def check_same_dims(student: Tensor, teacher: Tensor, dims: Sequence[int], what: str) -> None:
    """Raise ``ValueError`` naming both shapes when the given dimensions differ."""
    if student.dim() != teacher.dim() or any(student.shape[d] != teacher.shape[d] for d in dims):
        raise ValueError(
            f"{what} shapes differ: student {_shape(student)} vs teacher {_shape(teacher)}"
        )


def pairwise_distances(e: Tensor, squared: bool = False, eps: float = 1e-12) -> Tensor:
    r"""Euclidean distance matrix of the rows of ``e`` (``(B, D)``) as RKD/IRG compute it:
    :math:`\|a\|^2+\|b\|^2-2a\cdot b` clamped at ``eps``, optional square root, zero diagonal."""
    sq = e.pow(2).sum(1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps)
    if not squared:
        d = d.sqrt()
    eye = torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return d.masked_fill(eye, 0.0)


def squared_distances(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Plain squared Euclidean distances between rows (no clamp, no diagonal handling)."""
    b = a if b is None else b
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)


def cosine_matrix(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Cosine similarity between the rows of ``a`` and of ``b`` (``a`` itself by default)."""
    a = F.normalize(_flat(a), dim=1)
    b = a if b is None else F.normalize(_flat(b), dim=1)
    return a @ b.t()


def row_normalized_gram(x: Tensor) -> Tensor:
    """SP's batch similarity: ``f f^T`` of flattened features with L2-normalised rows."""
    x = _flat(x)
    return F.normalize(x @ x.t(), dim=1)


def pool_to_smaller(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool the map with the larger height to the other's (square) size, as FSP does."""
    ha, hb = a.shape[2], b.shape[2]
    if ha > hb:
        a = F.adaptive_avg_pool2d(a, (hb, hb))
    elif hb > ha:
        b = F.adaptive_avg_pool2d(b, (ha, ha))
    return a, b


def soft_kl(logits_student: Tensor, prob_teacher: Tensor, temperature: float) -> Tensor:
    """Per-sample ``KL(p_t || softmax(z_s / T))`` summed over classes (``p_t`` given)."""
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    return F.kl_div(log_p_s, prob_teacher, reduction="none").sum(1)


def _classifier_params(classifier: Any) -> tuple[Tensor, Tensor | None]:
    """Weight and bias of a teacher classifier: ``nn.Linear``, a weight or ``(weight, bias)``."""
    if isinstance(classifier, nn.Module):
        weight, bias = classifier.weight, getattr(classifier, "bias", None)
    elif isinstance(classifier, (list, tuple)):
        weight, bias = classifier[0], classifier[1] if len(classifier) > 1 else None
    else:
        weight, bias = classifier, None
    return weight.detach(), None if bias is None else bias.detach()


class _MLPEmbed(nn.Module):
    """Linear(d_in, 2 d_out) - ReLU - Linear(2 d_out, d_out); PyTorch default Linear init.

    The L2 normalisation that follows it in the reference code is applied by the losses, so that
    the parameter-free core (no embedding) normalises the same way."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim_in, 2 * dim_out), nn.ReLU(), nn.Linear(2 * dim_out, dim_out)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(_flat(x))


def embedding_example(batch, dtype, generator, large, width=16, teacher_width=None):
    """Student/teacher embeddings ``(B, D)``: ``(256, 256)`` when ``large``."""
    n, d = (256, 256) if large else (batch, width)
    dt = d if teacher_width is None or large else teacher_width
    return {
        "feat_student": torch.randn(n, d, generator=generator, dtype=dtype),
        "feat_teacher": torch.randn(n, dt, generator=generator, dtype=dtype),
    }


# ----------------------------------------------------------------------------------------------
# Losses with reference cases or specs
# ----------------------------------------------------------------------------------------------


@register("fsp", paper="yim2017gift", family="similarity", evidence="reference")
class FSP(DistillationLoss):
    r"""Flow of Solution Procedure (Yim et al., CVPR 2017; catalogue id ``yim2017gift``,
    "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer
    Learning").

    For consecutive maps :math:`F_l, F_{l+1}` of one network (the larger one average-pooled to the
    smaller, square size) the FSP matrix is
    :math:`G_l[c', c] = \frac{1}{HW}\sum_{h,w} F_{l+1}[c',h,w]\,F_l[c,h,w]` and

    .. math:: \mathcal{L} = w\sum_l \operatorname{mean}\big((G^s_l - G^t_l)^2\big)

    Args:
        loss_weight: ``w``, multiplies the whole loss.

    Shapes: ``feats_student`` and ``feats_teacher`` are lists of ``(B, C_l, H_l, W_l)`` maps with
    equal channel counts per layer (spatial sizes may differ between the networks); returns a
    scalar. Checked against RepDistiller ``distiller_zoo/FSP.py`` (the per-pair losses summed, as
    ``helper/pretrain.py`` does). The paper (and torchdistill) differ: torchdistill max-pools and
    uses a per-sample L2 norm; the default follows RepDistiller, whose numbers are the reference.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    @staticmethod
    def fsp_matrices(feats: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for bot, top in zip(feats[:-1], feats[1:], strict=True):
            bot, top = pool_to_smaller(bot, top)
            out.append(torch.einsum("bih,bjh->bij", _flat3(top), _flat3(bot)) / bot[0, 0].numel())
        return out

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        check_same_length(feats_student, feats_teacher)
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_dims(s, t, (0, 1), "FSP feature map (batch and channels)")
        teachers = [t.detach() for t in feats_teacher]
        loss = feats_student[0].new_zeros(())
        for gs, gt in zip(
            self.fsp_matrices(feats_student), self.fsp_matrices(teachers), strict=True
        ):
            loss = loss + (gs - gt).pow(2).mean()
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        shapes = (
            [(64, 64, 16, 16), (64, 64, 16, 16), (64, 128, 8, 8)]
            if large
            else [(batch, 8, 4, 4), (batch, 8, 4, 4), (batch, 16, 2, 2)]
        )
        return {
            f"feats_{role}": [torch.randn(*s, generator=generator, dtype=dtype) for s in shapes]
            for role in ("student", "teacher")
        }


@register("irg", paper="liu2019knowledge", family="similarity", evidence="reference")
class IRG(DistillationLoss):
    r"""Instance Relationship Graph (Liu et al., CVPR 2019; catalogue id ``liu2019knowledge``,
    "Knowledge Distillation via Instance Relationship Graph").

    With :math:`D(f)` the squared pairwise-distance matrix of the flattened batch divided by its
    maximum (+1e-12),

    .. math::
        \mathcal{L} = w\Big[w_g\big(\mathrm{MSE}(D(f^s), D(f^t)) + [\text{same shape}]\,
        \mathrm{MSE}(f^s, f^t)\big) + w_{tr}\sum_{k}\big(
        \mathrm{MSE}(\mathrm{MSE}(D(l^s_{2k}), D(l^s_{2k+1})), \mathrm{MSE}(D(l^t_{2k}),
        D(l^t_{2k+1}))) + \mathrm{MSE}(\mathrm{MSE}(l^s_{2k}, l^s_{2k+1}),
        \mathrm{MSE}(l^t_{2k}, l^t_{2k+1}))\big)\Big]

    The edge part of the transform term is skipped with ``no_edge_transform``; its vertex part only
    exists when both pairs have equal shapes.

    Args:
        w_graph: ``w_g``, weight of the vertex + edge term (1).
        w_transform: ``w_tr``, weight of the IRG-transformation term (1).
        no_edge_transform: drop the edge part of the transform term (False).
        loss_weight: ``w``, multiplies the whole loss.

    Shapes: ``feat_student`` ``(B, *)`` and ``feat_teacher`` ``(B, *)`` (widths may differ);
    optional ``feats_student`` / ``feats_teacher``: lists of transform-layer maps, used in
    consecutive pairs (0, 1), (2, 3), ... Checked against the PyTorch port in SemCKD
    ``distiller_zoo/IRG.py`` ("code from author: yufanLIU/IRG").
    """

    def __init__(
        self,
        w_graph: float = 1.0,
        w_transform: float = 1.0,
        no_edge_transform: bool = False,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.w_graph = w_graph
        self.w_transform = w_transform
        self.no_edge_transform = no_edge_transform
        self.loss_weight = loss_weight

    @staticmethod
    def graph(x: Tensor) -> Tensor:
        d = pairwise_distances(_flat(x), squared=True)
        return d / (d.max() + 1e-12)

    def forward(
        self,
        feat_student: Tensor,
        feat_teacher: Tensor,
        feats_student: Sequence[Tensor] | None = None,
        feats_teacher: Sequence[Tensor] | None = None,
    ) -> Tensor:
        check_same_batch(feat_student, feat_teacher, "IRG feature")
        feat_teacher = feat_teacher.detach()
        loss = F.mse_loss(self.graph(feat_student), self.graph(feat_teacher))
        if feat_student.shape == feat_teacher.shape:
            loss = loss + F.mse_loss(feat_student, feat_teacher)
        loss = self.w_graph * loss
        trans_s, trans_t = _as_list(feats_student), [t.detach() for t in _as_list(feats_teacher)]
        check_same_length(trans_s, trans_t)
        for s, t in zip(trans_s, trans_t, strict=True):
            check_same_batch(s, t, "IRG transform feature")
        for k in range(0, len(trans_s) - 1, 2):
            s1, s2, t1, t2 = trans_s[k], trans_s[k + 1], trans_t[k], trans_t[k + 1]
            if not self.no_edge_transform:
                edge_s = F.mse_loss(self.graph(s1), self.graph(s2))
                edge_t = F.mse_loss(self.graph(t1), self.graph(t2))
                loss = loss + self.w_transform * F.mse_loss(edge_s, edge_t)
            if s1.shape == s2.shape and t1.shape == t2.shape:
                vert = F.mse_loss(F.mse_loss(s1, s2), F.mse_loss(t1, t2))
                loss = loss + self.w_transform * vert
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = embedding_example(batch, dtype, generator, large)
        out.update(feature_example(batch, dtype, generator, large, layers=2))
        return out


@register("cc", paper="peng2019correlation", family="similarity", evidence="reference")
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
        student_channels, teacher_channels: when both are given, the loss owns the paper's
            linear embeddings (``nn.Linear(C, embed_dim)``, PyTorch default init) for each
            network's flattened features, as torchdistill's ``Linear4CCKD`` wrappers do; without
            them the inputs must already be embedded.
        embed_dim: width of those embeddings (128).
        loss_weight: ``w``, multiplies the whole loss.

    Shapes: ``feat_student`` ``(B, D_s)``, ``feat_teacher`` ``(B, D_t)``; returns a scalar.
    Checked against torchdistill ``CCKDLoss`` (``torchdistill/losses/mid_level.py``). RepDistiller's
    ``distiller_zoo/CC.py`` computes a different quantity; the default follows torchdistill, which
    matches the paper's equations.
    """

    def __init__(
        self,
        kernel: str = "gaussian",
        gamma: float = 0.4,
        max_p: int = 2,
        reduction: str = "batchmean",
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        embed_dim: int = 128,
        loss_weight: float = 1.0,
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
        check_same_batch(feat_student, feat_teacher, "CC embedding")
        f_s, f_t = _flat(feat_student), _flat(feat_teacher.detach())
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


@register("rkd", paper="park2019relational", family="similarity", evidence="reference")
class RKD(DistillationLoss):
    r"""Relational Knowledge Distillation (Park et al., CVPR 2019; catalogue id
    ``park2019relational``).

    Distance potential :math:`\psi_D(t_i,t_j)=\|t_i-t_j\|_2/\mu` (:math:`\mu` the mean of the
    positive distances of the batch) and angle potential
    :math:`\psi_A(t_i,t_j,t_k)=\langle\frac{t_i-t_j}{\|t_i-t_j\|},\frac{t_k-t_j}{\|t_k-t_j\|}\rangle`;

    .. math::
        \mathcal{L} = w\big[\lambda_D\,\ell_\delta(\psi_D(s),\psi_D(t))
        + \lambda_A\,\ell_\delta(\psi_A(s),\psi_A(t))\big]

    with :math:`\ell_\delta` the Huber (smooth-L1, :math:`\beta=1`) loss averaged over all
    :math:`B^2` resp. :math:`B^3` entries (degenerate entries included, as in the code).

    Args:
        distance_weight: :math:`\lambda_D` (1; mdistiller's CIFAR setting uses 25).
        angle_weight: :math:`\lambda_A` (2; mdistiller's CIFAR setting uses 50).
        loss_weight: ``w``, multiplies the whole loss.

    Shapes: ``feat_student`` ``(B, D_s)``, ``feat_teacher`` ``(B, D_t)`` (flattened when higher
    dimensional; widths may differ). Checked against lenscloth/RKD ``metric/loss.py``
    (``RkdDistance`` + ``RKdAngle``), identical to mdistiller and RepDistiller.
    """

    def __init__(
        self, distance_weight: float = 1.0, angle_weight: float = 2.0, loss_weight: float = 1.0
    ):
        super().__init__()
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight
        self.loss_weight = loss_weight

    @staticmethod
    def distance_potential(e: Tensor) -> Tensor:
        d = pairwise_distances(e)
        return d / d[d > 0].mean()

    @staticmethod
    def angle_potential(e: Tensor) -> Tensor:
        diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
        return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        check_same_batch(feat_student, feat_teacher, "RKD embedding")
        s, t = _flat(feat_student), _flat(feat_teacher.detach())
        loss = feat_student.new_zeros(())
        if self.distance_weight:
            d = F.smooth_l1_loss(self.distance_potential(s), self.distance_potential(t))
            loss = loss + self.distance_weight * d
        if self.angle_weight:
            a = F.smooth_l1_loss(self.angle_potential(s), self.angle_potential(t))
            loss = loss + self.angle_weight * a
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return embedding_example(batch, dtype, generator, large)


@register("sp", paper="tung2019similarity", family="similarity", evidence="reference")
class SP(DistillationLoss):
    r"""Similarity-Preserving KD (Tung & Mori, ICCV 2019; catalogue id ``tung2019similarity``).

    :math:`\tilde G = \mathrm{rownorm}(f f^\top)` of the flattened batch, for every layer :math:`l`:

    .. math:: \mathcal{L} = w\sum_l \frac{1}{B^2}\|\tilde G^t_l - \tilde G^s_l\|_F^2

    Args:
        loss_weight: ``w`` (mdistiller's CIFAR weight is 3000).

    Shapes: ``feats_student`` / ``feats_teacher``: lists of ``(B, *)`` tensors (widths and
    spatial sizes may differ). Checked against RepDistiller ``distiller_zoo/SP.py``
    (``Similarity``), identical to mdistiller ``sp_loss`` and torchdistill ``SPKDLoss``.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        feats_student, feats_teacher = _as_list(feats_student), _as_list(feats_teacher)
        check_same_length(feats_student, feats_teacher)
        loss = feats_student[0].new_zeros(())
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_batch(s, t, "SP feature")
            diff = row_normalized_gram(t.detach()) - row_normalized_gram(s)
            loss = loss + diff.pow(2).sum() / s.shape[0] ** 2
        return self.loss_weight * loss


@register("ickd", paper="liu2021exploring", family="similarity", evidence="reference")
class ICKD(DistillationLoss):
    r"""Inter-Channel Correlation KD (Liu et al., ICCV 2021; catalogue id ``liu2021exploring``,
    "Exploring Inter-Channel Correlation for Diversity-Preserved Knowledge Distillation").

    Inter-channel Gram matrix over spatial positions with L2-normalised rows,
    :math:`\tilde G = \mathrm{rownorm}(F F^\top)\in\mathbb R^{B\times C\times C}`, and

    .. math:: \mathcal{L} = \frac{w}{C B}\sum_{b,i,j}(\tilde G^s_{bij}-\tilde G^t_{bij})^2

    Args:
        student_channels, teacher_channels: when both are given the loss owns the paper's
            embedding (1x1 conv without bias, PyTorch default init, then BatchNorm2d) mapping the
            student to the teacher's channel count; without them ``feat_student`` must already
            have the teacher's channels (the reference cases feed embedded features).
        loss_weight: ``w`` (the reference CIFAR scripts pass ``-b 4``).

    Shapes: ``(B, C, H_s, W_s)`` and ``(B, C, H_t, W_t)`` (spatial sizes may differ). Checked
    against ADLab-AutoDrive/ICKD ``Cifar100/distiller_zoo/ICKD.py`` (``batch_loss``). The same
    repository's ImageNet code (and torchdistill ``ChSimLoss``) divide by :math:`C B^2`; the
    default follows the CIFAR code of the reference case.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.embed = None
        if student_channels is not None and teacher_channels is not None:
            self.embed = nn.Sequential(
                nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                nn.BatchNorm2d(teacher_channels),
            )

    @staticmethod
    def channel_gram(x: Tensor) -> Tensor:
        f = _flat3(x)
        return F.normalize(torch.bmm(f, f.transpose(1, 2)), dim=2)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        check_same_batch(feat_student, feat_teacher, "ICKD feature")
        s = self.embed(feat_student) if self.embed is not None else feat_student
        check_same_dims(s, feat_teacher, (0, 1), "ICKD feature (batch and channels)")
        b, c = s.shape[:2]
        diff = self.channel_gram(s) - self.channel_gram(feat_teacher.detach())
        return self.loss_weight * diff.pow(2).sum() / (c * b)


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise Pearson correlation as DIST computes it (``eps`` added to the norm product)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


@register("dist", paper="huang2022knowledge", family="similarity", evidence="reference")
class DIST(DistillationLoss):
    r"""DIST (Huang et al., NeurIPS 2022; catalogue id ``huang2022knowledge``, "Knowledge
    Distillation from A Stronger Teacher").

    With :math:`Y = \mathrm{softmax}(Z/\tau)` row-wise and :math:`\rho` the Pearson correlation,

    .. math::
        \mathcal{L} = w\,\tau^2\Big[\beta\big(1-\tfrac1B\sum_i\rho(Y^s_{i,:},Y^t_{i,:})\big)
        + \gamma\big(1-\tfrac1C\sum_c\rho(Y^s_{:,c},Y^t_{:,c})\big)\Big]

    (inter-class relation per sample, intra-class relation per class over the batch; the
    correlation adds ``1e-8`` to the product of norms, so the loss is ~1e-8 rather than exactly 0 at
    a perfect match).

    Args:
        beta: weight of the inter-class term (1).
        gamma: weight of the intra-class term (1).
        temperature: :math:`\tau` (1 on ImageNet; the CIFAR configs use 4).
        loss_weight: ``w``.

    Shapes: ``logits_student`` and ``logits_teacher`` ``(B, C)``. Checked against
    hunto/image_classification_sota ``lib/models/losses/dist_kd.py`` (``DIST``), identical to
    Hao840/vanillaKD ``losses/dist.py``. Filed under "similarity" as the survey classifies it.
    """

    def __init__(
        self,
        beta: float = 1.0,
        gamma: float = 1.0,
        temperature: float = 1.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.beta, self.gamma, self.temperature = beta, gamma, temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        y_s = F.softmax(logits_student / t, dim=1)
        y_t = F.softmax(logits_teacher.detach() / t, dim=1)
        inter = 1 - pearson_rows(y_s, y_t).mean()
        intra = 1 - pearson_rows(y_s.t(), y_t.t()).mean()
        return self.loss_weight * t * t * (self.beta * inter + self.gamma * intra)


# ----------------------------------------------------------------------------------------------
# Losses without reference files (implemented from the papers and, where found, public code)
# ----------------------------------------------------------------------------------------------


def _average_teacher_probs(logits_teacher: Sequence[Tensor], weights: Tensor, t: float) -> Tensor:
    probs = torch.stack([F.softmax(z.detach() / t, dim=1) for z in logits_teacher])
    return (weights.to(probs).view(-1, 1, 1) * probs).sum(0)


def _teacher_weights(weights: Sequence[float] | None, k: int) -> Tensor:
    if weights is None:
        return torch.full((k,), 1.0 / k)
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.numel() != k:
        raise ValueError(f"{w.numel()} teacher weights for {k} teachers")
    return w / w.sum()


def _check_teachers(student: Tensor, teachers: Sequence[Tensor], what: str, dims=(0,)) -> None:
    if not teachers:
        raise ValueError(f"no teacher {what} given")
    for t in teachers:
        check_same_dims(student, t, dims, what)


@register("multi_teacher", paper="you2017learning", family="similarity", evidence="paper")
class MultiTeacher(DistillationLoss):
    r"""Learning from multiple teachers (You et al., KDD 2017; catalogue id ``you2017learning``,
    "Learning from Multiple Teacher Networks").

    Output layer: the student matches the average of the teachers' softened outputs,
    :math:`\bar p = \sum_k \omega_k\,\sigma(z^{t_k}/T)`. Intermediate layer: relative
    dissimilarity. For every triplet :math:`(a, i, j)` of distinct samples the teachers vote on
    which of :math:`i, j` is closer to the anchor,
    :math:`v_{aij}=\sum_k\omega_k\operatorname{sign}(d^{t_k}_{aj}-d^{t_k}_{ai})`, and the student's
    distances must respect the majority with a margin:

    .. math::
        \mathcal{L} = w\Big[\lambda_{kd}T^2\,\mathrm{KL}(\bar p\,\|\,\sigma(z^s/T))
        + \lambda_{rd}\operatorname{mean}_{v_{aij}\neq0}
        \big[\operatorname{sign}(v_{aij})(d^s_{ai}-d^s_{aj})+\delta\big]_+\Big]

    with :math:`d` the squared Euclidean distance between L2-normalised flattened features.

    Args:
        temperature: :math:`T` (4). The :math:`T^2` factor follows Hinton et al.
        margin: triplet margin :math:`\delta` (0.1, on normalised features).
        kd_weight: :math:`\lambda_{kd}` (1). rd_weight: :math:`\lambda_{rd}` (1).
        teacher_weights: :math:`\omega_k` (uniform when None), also used for the vote.
        loss_weight: ``w``.

    Shapes: ``logits_student`` ``(B, C)``, ``logits_teacher`` a list of ``(B, C)`` (one per
    teacher); optional ``feat_student`` ``(B, *)`` and ``feat_teacher`` a list of ``(B, *)``
    (widths may differ). No official code exists; implemented from the paper's description
    (averaged soft targets, triplets of relative dissimilarity, voting). Every triplet of the batch
    is used (the paper samples triplets); the feature normalisation, the default margin and the
    temperature are our choices, and ties in the vote are skipped. ``zero_at_match`` is False: the
    margin keeps the triplet term positive even for a student equal to a teacher.
    """

    zero_at_match = False

    def __init__(
        self,
        temperature: float = 4.0,
        margin: float = 0.1,
        kd_weight: float = 1.0,
        rd_weight: float = 1.0,
        teacher_weights: Sequence[float] | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature, self.margin = temperature, margin
        self.kd_weight, self.rd_weight = kd_weight, rd_weight
        self.teacher_weights = teacher_weights
        self.loss_weight = loss_weight

    def relative_dissimilarity(self, feat_student: Tensor, feats_teacher: list[Tensor], w: Tensor):
        d_s = squared_distances(F.normalize(_flat(feat_student), dim=1))
        n = d_s.shape[0]
        # votes[a, i, j] > 0: the (weighted) majority of teachers finds i closer to a than j
        votes = d_s.new_zeros(n, n, n)
        for wk, t in zip(w.tolist(), feats_teacher, strict=True):
            d_t = squared_distances(F.normalize(_flat(t), dim=1))
            votes = votes + wk * torch.sign(d_t.unsqueeze(1) - d_t.unsqueeze(2))
        eye = torch.eye(n, dtype=torch.bool, device=d_s.device)
        distinct = ~(eye.unsqueeze(2) | eye.unsqueeze(1) | eye.unsqueeze(0))
        valid = distinct & (votes != 0)
        if not bool(valid.any()):
            return d_s.new_zeros(())
        hinge = F.relu(torch.sign(votes) * (d_s.unsqueeze(2) - d_s.unsqueeze(1)) + self.margin)
        return hinge[valid].mean()

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor | Sequence[Tensor],
        feat_student: Tensor | None = None,
        feat_teacher: Tensor | Sequence[Tensor] | None = None,
    ) -> Tensor:
        teachers = _as_list(logits_teacher)
        _check_teachers(logits_student, teachers, "multi-teacher logits", dims=(0, 1))
        w = _teacher_weights(self.teacher_weights, len(teachers))
        t = self.temperature
        p_bar = _average_teacher_probs(teachers, w, t)
        loss = self.kd_weight * t * t * soft_kl(logits_student, p_bar, t).mean()
        if feat_student is not None and feat_teacher is not None:
            feats_t = [f.detach() for f in _as_list(feat_teacher)]
            if len(feats_t) != len(teachers):
                raise ValueError(f"{len(feats_t)} teacher features for {len(teachers)} teachers")
            _check_teachers(feat_student, feats_t, "multi-teacher feature")
            loss = loss + self.rd_weight * self.relative_dissimilarity(feat_student, feats_t, w)
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, c, d = (256, 100, 256) if large else (batch, 10, 16)

        def r(*s):
            return torch.randn(*s, generator=generator, dtype=dtype)

        return {
            "logits_student": r(n, c),
            "logits_teacher": [2 * r(n, c) for _ in range(3)],
            "feat_student": r(n, d),
            "feat_teacher": [r(n, d) for _ in range(3)],
        }


def _count_sketch(x: Tensor, dim: int, seed: int) -> Tensor:
    """Count sketch of the rows of ``x`` into ``dim`` bins, hash fixed by ``(seed, width)``."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + x.shape[1])
    h = torch.randint(0, dim, (x.shape[1],), generator=g).to(x.device)
    s = (torch.randint(0, 2, (x.shape[1],), generator=g) * 2 - 1).to(x)
    return x.new_zeros(x.shape[0], dim).index_add(1, h, x * s)


def compact_bilinear(x: Tensor, y: Tensor, dim: int, seed: int = 0) -> Tensor:
    r"""Compact bilinear pooling (Tensor Sketch, Gao et al. 2016) of row pairs, followed by the
    usual signed square root and L2 normalisation: an approximation of :math:`x \otimes y` in
    ``dim`` dimensions with fixed random hashes (deterministic, no parameters)."""
    fx = torch.fft.rfft(_count_sketch(x, dim, 2 * seed), dim=1)
    fy = torch.fft.rfft(_count_sketch(y, dim, 2 * seed + 1), dim=1)
    z = torch.fft.irfft(fx * fy, n=dim, dim=1)
    z = torch.sign(z) * torch.sqrt(z.abs() + 1e-12)
    return F.normalize(z, dim=1)


def _pooled(x: Tensor) -> Tensor:
    """Global-average-pool feature maps; pass vectors through."""
    return x.mean(dim=(2, 3)) if x.dim() == 4 else _flat(x)


def _pair_weights(weights: Tensor | Sequence[float] | None, k: int) -> tuple[list, Tensor]:
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    if weights is None:
        return pairs, torch.full((len(pairs),), 1.0 / len(pairs))
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.shape == (k, k):
        w = torch.stack([w[i, j] for i, j in pairs])
    if w.numel() != len(pairs):
        raise ValueError(f"edge weights must be ({k}, {k}) or {len(pairs)} values")
    return pairs, w / w.sum()


@register("graph_kd", paper="zhang2018better", family="similarity", evidence="paper")
class GraphKD(DistillationLoss):
    r"""Graph distillation from several teachers (Zhang & Peng, IJCAI 2018; catalogue id
    ``zhang2018better``, "Better and Faster: Knowledge Transfer from Multiple Self-supervised
    Learning Tasks via Graph Distillation for Video Classification").

    Teachers are graph nodes; every edge :math:`(i, j)`, :math:`i\le j` (self-loops included, so one
    teacher works too) carries an ensembled piece of knowledge the student must match.

    *Logits graph* (multi-distribution joint matching with the Earth Mover's distance): the edge
    target is :math:`m_{ij}=\tfrac12(p_i+p_j)`, :math:`p_k=\sigma(z^{t_k}/T)`, and the cost is the
    EMD under the uniform (0/1) ground distance between classes, i.e. the total variation
    :math:`\tfrac12\|q-m_{ij}\|_1`, :math:`q=\sigma(z^s/T)`.

    *Representation graph*: the edge representation is the compact bilinear pooling
    :math:`\mathrm{CBP}(f_i, f_j)` of the two teachers' pooled features (which handles teachers of
    different widths); the student's own bilinear representation :math:`\mathrm{CBP}(f_s, f_s)`
    is pulled towards it.

    .. math::
        \mathcal{L} = w\sum_{i\le j}\alpha_{ij}\Big[\lambda_l\,\tfrac12\|q-m_{ij}\|_1
        + \lambda_r\,\|\mathrm{CBP}(f_s,f_s)-\mathrm{CBP}(f_i,f_j)\|_2^2\Big]
        \quad(\text{both averaged over the batch})

    Args:
        temperature: :math:`T` (4).
        logit_weight: :math:`\lambda_l` (1). rep_weight: :math:`\lambda_r` (1).
        cbp_dim: output width of the compact bilinear pooling (512).
        edge_weights: :math:`\alpha_{ij}` as a ``(K, K)`` matrix (upper triangle used) or one
            value per edge; uniform when None.
        seed: fixes the count-sketch hashes of the bilinear pooling.
        loss_weight: ``w``.

    Shapes: ``logits_student`` ``(B, C)``, ``logits_teacher`` a list of ``(B, C)``; optional
    ``feat_student`` ``(B, C_s[, H, W])`` and ``feat_teacher`` a list (one per teacher, maps are
    globally average-pooled). No official code was found; implemented from the paper's
    description. Inferred (uncertain): the ground distance of the EMD, the pair ensembling by
    averaging, the student's bilinear self-representation (the paper may use a learned
    projection), the uniform edge weights and the defaults. ``zero_at_match`` is False: with
    several distinct teachers no student matches every edge.
    """

    zero_at_match = False

    def __init__(
        self,
        temperature: float = 4.0,
        logit_weight: float = 1.0,
        rep_weight: float = 1.0,
        cbp_dim: int = 512,
        edge_weights: Tensor | Sequence[float] | None = None,
        seed: int = 0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature, self.logit_weight, self.rep_weight = temperature, logit_weight, rep_weight
        self.cbp_dim, self.edge_weights, self.seed = cbp_dim, edge_weights, seed
        self.loss_weight = loss_weight

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor | Sequence[Tensor],
        feat_student: Tensor | None = None,
        feat_teacher: Tensor | Sequence[Tensor] | None = None,
    ) -> Tensor:
        teachers = [z.detach() for z in _as_list(logits_teacher)]
        _check_teachers(logits_student, teachers, "graph-KD logits", dims=(0, 1))
        pairs, alpha = _pair_weights(self.edge_weights, len(teachers))
        alpha = alpha.to(logits_student)
        t = self.temperature
        q = F.softmax(logits_student / t, dim=1)
        p = [F.softmax(z / t, dim=1) for z in teachers]
        logit_terms = torch.stack(
            [0.5 * (q - 0.5 * (p[i] + p[j])).abs().sum(1).mean() for i, j in pairs]
        )
        loss = self.logit_weight * (alpha * logit_terms).sum()
        if feat_student is not None and feat_teacher is not None:
            feats_t = [_pooled(f.detach()) for f in _as_list(feat_teacher)]
            if len(feats_t) != len(teachers):
                raise ValueError(f"{len(feats_t)} teacher features for {len(teachers)} teachers")
            f_s = _pooled(feat_student)
            _check_teachers(f_s, feats_t, "graph-KD feature")
            r_s = compact_bilinear(f_s, f_s, self.cbp_dim, self.seed)
            rep_terms = torch.stack(
                [
                    (r_s - compact_bilinear(feats_t[i], feats_t[j], self.cbp_dim, self.seed))
                    .pow(2)
                    .sum(1)
                    .mean()
                    for i, j in pairs
                ]
            )
            loss = loss + self.rep_weight * (alpha * rep_terms).sum()
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = MultiTeacher.example_inputs(batch, dtype, generator, large)
        out["feat_teacher"] = [
            torch.randn(out["feat_student"].shape[0], 8 * (k + 2), generator=generator, dtype=dtype)
            for k in range(3)
        ]
        return out


def _class_centres(x: Tensor, onehot: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class means of the flattened rows of ``x`` (zeros for absent classes) and counts."""
    counts = onehot.sum(0)
    sums = onehot.t() @ _flat(x)
    return sums / counts.clamp(min=1).unsqueeze(1), counts


def _own_centre(x: Tensor, onehot: Tensor, target: Tensor) -> Tensor:
    """Each sample's class centre (over the rows selected by ``onehot``), shaped like ``x``;
    a sample whose class has no selected row keeps its own value."""
    centres, counts = _class_centres(x, onehot)
    have = (counts[target] > 0).to(x).view(-1, *([1] * (x.dim() - 1)))
    return have * centres[target].view_as(x) + (1 - have) * x


@register("cskd", paper="chen2020improving", family="similarity", evidence="reference")
class CSKD(DistillationLoss):
    r"""Category structure KD (Chen et al., ECCV 2020; catalogue id ``chen2020improving``,
    "Improving Knowledge Distillation via Category Structure").

    With :math:`c(\cdot)` a sample's class centre in the batch (true labels) and :math:`\tilde c`
    the centre over the correctly classified samples only (each network's own predictions), the
    intra-category structure is each sample's offset from its centre, the inter-category structure
    the cosine-similarity matrix :math:`R` of the class centres present in the batch
    (:math:`K'` of them):

    .. math::
        \mathcal{L} = w\Big[\lambda_{intra}\Big(\tfrac{\mathrm{MSE}(f^t-\tilde c^t,\;
        f^s-\mathrm{sg}(\tilde c^s))}{CHW} + \tfrac{\mathrm{MSE}(z^t-c^t,\;z^s-\mathrm{sg}(c^s))}{K}
        \Big) + \lambda_c\,\mathrm{MSE}(z^s, \mathrm{sg}(c^s)) + \lambda_{inter}\Big(
        \tfrac{\mathrm{MSE}(R^t_f,R^s_f)}{K'} + \tfrac{\mathrm{MSE}(R^t_z,R^s_z)}{K'}\Big)
        + \lambda_{kd}\,\mathrm{MSE}(z^t, z^s)\Big]

    (:math:`\mathrm{sg}` = stop-gradient, :math:`f` features, :math:`z` logits, :math:`K` classes).

    Args:
        intra_weight: :math:`\lambda_{intra}` (0.002). center_weight: :math:`\lambda_c` (0.1), the
            student-only centre term of the official ``intra_cor``. inter_weight:
            :math:`\lambda_{inter}` (0.04). kd_weight: :math:`\lambda_{kd}` (1e-6 =
            ``(1 - alpha) * 1e-5`` in the official script).
        use_filter: centre the feature offsets on correctly classified samples (True).
        student_channels, teacher_channels: when both are given the loss owns the student's
            ``1x1`` conv (no bias, PyTorch default init: the official script assigns fresh
            ``conv1x1`` branches after building the ResNet) to the teacher's channels; otherwise
            features must already have equal shapes.
        loss_weight: ``w``.

    Shapes: ``feat_student``/``feat_teacher`` ``(B, C, H, W)`` (or ``(B, D)``; the division then
    uses ``D``), ``logits_*`` ``(B, K)``, ``target`` ``(B,)``. Checked against the authors' code
    xeanzheng/CSKD ``train_cifar.py`` (``category_loss`` and ``loss_KD``, cross-entropy excluded);
    as there, the logit offsets use unfiltered centres even with ``use_filter``. The official
    cosine has no epsilon (F.normalize's 1e-12 is used here). ``zero_at_match`` is False: the
    centre term pulls the student's logits to their class means whatever the teacher does.
    """

    zero_at_match = False

    def __init__(
        self,
        intra_weight: float = 0.002,
        center_weight: float = 0.1,
        inter_weight: float = 0.04,
        kd_weight: float = 1e-6,
        use_filter: bool = True,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.intra_weight, self.center_weight = intra_weight, center_weight
        self.inter_weight, self.kd_weight = inter_weight, kd_weight
        self.use_filter = use_filter
        self.loss_weight = loss_weight
        self.connector = None
        if student_channels is not None and teacher_channels is not None:
            self.connector = nn.Conv2d(student_channels, teacher_channels, 1, bias=False)

    def forward(
        self,
        feat_student: Tensor,
        feat_teacher: Tensor,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
    ) -> Tensor:
        check_same_batch(feat_student, feat_teacher, "CSKD feature")
        check_same_shape(logits_student, logits_teacher, "CSKD logits")
        check_same_batch(logits_student, feat_student, "CSKD logits/feature")
        f_s = self.connector(feat_student) if self.connector is not None else feat_student
        check_same_shape(f_s, feat_teacher, "CSKD feature")
        f_t, z_t, z_s = feat_teacher.detach(), logits_teacher.detach(), logits_student
        onehot = F.one_hot(target, z_s.shape[1]).to(z_s)
        if self.use_filter:
            ok_t = (z_t.argmax(1) == target).to(z_s).unsqueeze(1)
            ok_s = (z_s.detach().argmax(1) == target).to(z_s).unsqueeze(1)
            c_ft, c_fs = (
                _own_centre(f_t, onehot * ok_t, target),
                _own_centre(f_s, onehot * ok_s, target),
            )
        else:
            c_ft, c_fs = _own_centre(f_t, onehot, target), _own_centre(f_s, onehot, target)
        c_zt, c_zs = _own_centre(z_t, onehot, target), _own_centre(z_s, onehot, target).detach()
        per_sample = f_t[0].numel()
        intra = (
            F.mse_loss(f_s - c_fs.detach(), f_t - c_ft) / per_sample
            + F.mse_loss(z_s - c_zs, z_t - c_zt) / z_s.shape[1]
        )
        centre = F.mse_loss(z_s, c_zs)
        present = onehot.sum(0) > 0
        cen_ft, cen_fs = (_class_centres(f, onehot)[0][present] for f in (f_t, f_s))
        cen_zt, cen_zs = (_class_centres(z, onehot)[0][present] for z in (z_t, z_s))
        k = int(present.sum())
        inter = (
            F.mse_loss(cosine_matrix(cen_fs), cosine_matrix(cen_ft))
            + F.mse_loss(cosine_matrix(cen_zs), cosine_matrix(cen_zt))
        ) / k
        loss = (
            self.intra_weight * intra
            + self.center_weight * centre
            + self.inter_weight * inter
            + self.kd_weight * F.mse_loss(z_s, z_t)
        )
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = feature_example(batch, dtype, generator, large)
        n = out["feat_student"].shape[0]
        classes = 100 if large else 10
        out["logits_student"] = torch.randn(n, classes, generator=generator, dtype=dtype)
        out["logits_teacher"] = 2 * torch.randn(n, classes, generator=generator, dtype=dtype)
        # few classes per batch, so that class centres average several samples
        out["target"] = torch.randint(0, max(2, n // 2), (n,), generator=generator)
        return out


@register("feature_embedding", paper="chen2021learning", family="similarity", evidence="paper")
class FeatureEmbedding(DistillationLoss):
    r"""Locality-preserving feature embedding (Chen et al., IEEE TNNLS; catalogue id
    ``chen2021learning``, "Learning Student Networks via Feature Embedding").

    Neighbourhoods are taken in the teacher's (high-dimensional) feature space and preserved by the
    student's low-dimensional features, as in locality preserving projections:

    .. math::
        \mathcal{L} = \frac{w}{2B}\sum_{i}\sum_{j\in\mathcal N_k(i)}\alpha_{ij}\,
        \|f^s_i - f^s_j\|_2^2,\qquad \alpha_{ij}=\exp\!\big(-\|f^t_i-f^t_j\|_2^2/\sigma^2\big)

    with :math:`\mathcal N_k(i)` the :math:`k` nearest neighbours of sample :math:`i` among the
    batch in the teacher's space.

    Args:
        num_neighbors: :math:`k` (5; capped at ``B - 1``).
        sigma: heat-kernel width :math:`\sigma`; None uses :math:`\sigma^2` = the mean squared
            teacher distance between distinct samples of the batch.
        loss_weight: ``w``.

    Shapes: ``feat_student`` ``(B, *)``, ``feat_teacher`` ``(B, *)`` (widths differ: no adapter is
    needed, the point of the paper). No official code was found; implemented from the paper's
    description. Inferred: the batch as the neighbourhood pool, the :math:`1/(2B)` normalisation
    and the default :math:`k, \sigma`. ``zero_at_match`` is False: the loss is a weighted spread
    of the student's own features, not a student-teacher discrepancy.
    """

    zero_at_match = False

    def __init__(
        self, num_neighbors: int = 5, sigma: float | None = None, loss_weight: float = 1.0
    ):
        super().__init__()
        self.num_neighbors, self.sigma = num_neighbors, sigma
        self.loss_weight = loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        check_same_batch(feat_student, feat_teacher, "feature-embedding feature")
        s, t = _flat(feat_student), _flat(feat_teacher.detach())
        n = s.shape[0]
        k = min(self.num_neighbors, n - 1)
        if k < 1:
            return self.loss_weight * s.sum() * 0
        d_t = squared_distances(t)
        eye = torch.eye(n, dtype=torch.bool, device=s.device)
        sigma2 = d_t[~eye].mean() if self.sigma is None else torch.as_tensor(self.sigma**2).to(d_t)
        nn_idx = d_t.masked_fill(eye, float("inf")).topk(k, dim=1, largest=False).indices
        alpha = torch.exp(-d_t.gather(1, nn_idx) / sigma2.clamp(min=1e-12))
        d_s = (s.unsqueeze(1) - s[nn_idx]).pow(2).sum(-1)
        return self.loss_weight * (alpha * d_s).sum() / (2 * n)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return embedding_example(batch, dtype, generator, large, width=8, teacher_width=16)


def _rows(x: Tensor, idx: Tensor) -> Tensor:
    """``x[idx]`` for a ``(B, k)`` index of rows, via ``index_select``: the same values, but its
    backward is a cheap ``index_add`` instead of advanced indexing's accumulating ``index_put``."""
    return x.index_select(0, idx.flatten()).view(*idx.shape, *x.shape[1:])


@register("simrkd", paper="xin2024new", family="similarity", evidence="reference")
class NeighbourRelationKD(DistillationLoss):
    r"""Neighbourhood relational KD (Xin et al., ICASSP 2024; catalogue id ``xin2024new``,
    "A New Similarity-Based Relational Knowledge Distillation Method").

    Each sample's :math:`k` nearest neighbours :math:`\mathcal N(i)` are the most cosine-similar
    samples by teacher logits. Feature relation: for each layer the squared difference between a
    sample and a neighbour, averaged over channels and L2-normalised over positions,
    :math:`a_{ij}=\mathrm{norm}(\mathrm{mean}_c(F_i-F_j)^2)`. Logit relation: the softmax of the
    logit difference :math:`r_{ij}=\sigma(z_i-z_j)`.

    .. math::
        \mathcal{L} = w\Big[\lambda_f\sum_l\frac{1}{Bk}\sum_{i,j\in\mathcal N(i)}
        \|a^s_{ij}-a^t_{ij}\|_2^2 + \lambda_z\frac{1}{Bk}\sum_{i,j\in\mathcal N(i)}
        \mathrm{JS}(r^s_{ij}\,\|\,r^t_{ij})\Big]

    Args:
        num_neighbors: :math:`k` (1).
        feat_weight: :math:`\lambda_f` (10). logit_weight: :math:`\lambda_z` (10).
        loss_weight: ``w``.

    Shapes: ``feats_student`` / ``feats_teacher``: lists of ``(B, C, H, W)`` maps (channels may
    differ; the map with the larger height is average-pooled to the other's square size);
    ``logits_*`` ``(B, K)``. Checked against the authors' code xinxiaoxiaomeng/NRKD
    ``NRKD-master/distillers/NKD.py`` (``NKDLoss``, used on ``feat[1:-1]``): identical values
    and gradients (float64) for the default :math:`k=1`. For :math:`k>1` the official code
    concatenates the neighbours' maps along positions and then views them as
    ``(B, k, C, HW)``, which mixes channels and neighbours; here
    each neighbour keeps its own map (the logit term agrees for every :math:`k`). The separate
    vanilla KD term of their training script is not included (use ``kd``).
    """

    def __init__(
        self,
        num_neighbors: int = 1,
        feat_weight: float = 10.0,
        logit_weight: float = 10.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.num_neighbors = num_neighbors
        self.feat_weight, self.logit_weight = feat_weight, logit_weight
        self.loss_weight = loss_weight

    @staticmethod
    def neighbours(logits_teacher: Tensor, k: int) -> Tensor:
        cos = cosine_matrix(logits_teacher)
        return torch.sort(cos, dim=1, descending=True).indices[:, 1 : k + 1]

    def forward(
        self,
        feats_student: Sequence[Tensor],
        feats_teacher: Sequence[Tensor],
        logits_student: Tensor,
        logits_teacher: Tensor,
    ) -> Tensor:
        feats_student, feats_teacher = _as_list(feats_student), _as_list(feats_teacher)
        check_same_length(feats_student, feats_teacher)
        check_same_shape(logits_student, logits_teacher, "logits")
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_batch(s, t, "feature")
            check_same_batch(s, logits_student, "feature/logits")
        z_t = logits_teacher.detach()
        idx = self.neighbours(z_t, self.num_neighbors)  # (B, k)
        b, k = idx.shape
        feat_loss = logits_student.new_zeros(())
        for s, t in zip(feats_student, feats_teacher, strict=True):
            s, t = pool_to_smaller(s, t.detach())
            s, t = _flat3(s), _flat3(t)
            a_s = F.normalize((s.unsqueeze(1) - _rows(s, idx)).pow(2).mean(2), dim=2)
            a_t = F.normalize((t.unsqueeze(1) - _rows(t, idx)).pow(2).mean(2), dim=2)
            feat_loss = feat_loss + (a_s - a_t).pow(2).sum(2).mean()
        q = F.softmax(logits_student.unsqueeze(1) - _rows(logits_student, idx), dim=2)
        p = F.softmax(z_t.unsqueeze(1) - _rows(z_t, idx), dim=2)
        log_m = ((q + p) / 2).log()
        js = (F.kl_div(log_m, q, reduction="sum") + F.kl_div(log_m, p, reduction="sum")) / 2
        loss = self.feat_weight * feat_loss + self.logit_weight * js / (b * k)
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = feature_example(batch, dtype, generator, large, layers=2)
        n = out["feats_student"][0].shape[0]
        out["feats_student"][1] = F.avg_pool2d(out["feats_student"][1], 2)
        out.update(logits_example(n, dtype, generator, large=False))
        if large:
            out["logits_student"] = torch.randn(n, 100, generator=generator, dtype=dtype)
            out["logits_teacher"] = 2 * torch.randn(n, 100, generator=generator, dtype=dtype)
        return out


def _linear_classifier(e: Tensor, classifier: Any) -> Tensor:
    weight, bias = _classifier_params(classifier)
    return F.linear(e, weight.to(e), None if bias is None else bias.to(e))


def _softmax_weighted(losses: Sequence[Tensor]) -> Tensor:
    """Sum of the losses weighted by the softmax of their (detached) values."""
    stacked = torch.stack(list(losses))
    return (F.softmax(stacked.detach(), dim=0) * stacked).sum()


@register("calibrated_mask", paper="wang2024similarity", family="similarity", evidence="paper")
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
        temperature: :math:`T` (4). kd_weight: :math:`\lambda_{kd}` (1). sim_weight:
            :math:`\lambda_s` (10, the reference script's ``-b``).
        stage_sizes: spatial size :math:`H_l W_l` of each student stage and ``teacher_dim`` the
            teacher classifier's input width: when both are given the loss owns one MLP
            (``Linear(HW, 2D)-ReLU-Linear(2D, D)``, PyTorch default init) per stage. Without them
            the channel-mean map is used directly and :math:`HW` must equal :math:`D`.
        loss_weight: ``w``.

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
            self.embeds = nn.ModuleList(_MLPEmbed(hw, teacher_dim) for hw in stage_sizes)

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
        feats_student: Sequence[Tensor],
        classifier_teacher: Any,
    ) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        feats = _as_list(feats_student)
        for f in feats:
            check_same_batch(f, logits_teacher, "stage feature/teacher logits")
        if self.embeds is not None and len(self.embeds) != len(feats):
            raise ValueError(f"{len(feats)} stages but {len(self.embeds)} embeddings")
        z_t, t = logits_teacher.detach(), self.temperature
        mask = (z_t.argmax(1) == target).to(logits_student)
        count = mask.sum()
        kl = soft_kl(logits_student, F.softmax(z_t / t, dim=1), t)
        kd = t * t * (mask * kl).sum() / count.clamp(min=1)
        eye = torch.eye(z_t.shape[0], dtype=z_t.dtype, device=z_t.device)
        stage_losses = []
        for k, f in enumerate(feats):
            v = _flat(f.mean(1)) * mask.unsqueeze(1)
            e = F.normalize(self.embeds[k](v) if self.embeds is not None else v, dim=1)
            u = _linear_classifier(e, classifier_teacher)
            stage_losses.append(F.mse_loss(F.softmax(u @ z_t.t(), dim=0), eye))
        loss = self.kd_weight * kd
        if stage_losses:
            loss = loss + self.sim_weight * _softmax_weighted(stage_losses)
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


@register("gird", paper="hu2024global", family="similarity", evidence="paper")
class GIRD(DistillationLoss):
    r"""Global Instance Relation Distillation (Hu et al., Neural Computing and Applications 2024;
    catalogue id ``hu2024global``).

    Feature reutilisation: each layer keeps a FIFO memory of the L2-normalised flattened features
    of previous batches (teacher and student, stored without gradient). The similarity relation
    of the current batch is taken against the batch and the memory,
    :math:`A_l = \hat f_l\,[\hat f_l;\,M_l]^\top \in \mathbb R^{B\times(B+|M|)}`, and its evolution
    across consecutive layers is :math:`E_l = A_{l+1} - A_l`:

    .. math::
        \mathcal{L} = w\Big[\lambda_r\sum_l \mathrm{MSE}(A^s_l, A^t_l)
        + \lambda_e\sum_l \mathrm{MSE}(E^s_l, E^t_l)\Big]

    Args:
        memory_size: features kept per layer and network (256; 0 disables the memory).
        relation_weight: :math:`\lambda_r` (1). evolution_weight: :math:`\lambda_e` (1).
        loss_weight: ``w``.

    Shapes: ``feats_student`` / ``feats_teacher``: lists of ``(B, *)`` tensors (widths may
    differ). The memory is updated after each forward pass in training mode only (a new layer
    width resets it); it is a buffer, so it follows ``.to()``. The paper is paywalled and no code
    was found: implemented from its abstract (stored features, pairwise similarity relations,
    cross-layer relation evolution). Inferred: cosine similarity, MSE matching, the evolution as a
    difference of consecutive relation matrices, the memory size and the weights.
    """

    def __init__(
        self,
        memory_size: int = 256,
        relation_weight: float = 1.0,
        evolution_weight: float = 1.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.memory_size = memory_size
        self.relation_weight, self.evolution_weight = relation_weight, evolution_weight
        self.loss_weight = loss_weight

    def _memory(self, name: str, like: Tensor) -> Tensor:
        bank = getattr(self, name, None)
        if bank is None or bank.shape[1] != like.shape[1]:
            return like.new_zeros(0, like.shape[1])
        return bank.to(like)

    def _store(self, name: str, value: Tensor, bank: Tensor) -> None:
        new = torch.cat([value.detach(), bank])[: self.memory_size]
        if name in self._buffers:
            self._buffers[name] = new
        else:
            self.register_buffer(name, new)

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        feats_student, feats_teacher = _as_list(feats_student), _as_list(feats_teacher)
        check_same_length(feats_student, feats_teacher)
        rel_s, rel_t, updates = [], [], []
        for layer, (s, t) in enumerate(zip(feats_student, feats_teacher, strict=True)):
            check_same_batch(s, t, "GIRD feature")
            zs, zt = F.normalize(_flat(s), dim=1), F.normalize(_flat(t.detach()), dim=1)
            ms, mt = self._memory(f"memory_s{layer}", zs), self._memory(f"memory_t{layer}", zt)
            if ms.shape[0] != mt.shape[0]:
                ms, mt = ms[:0], mt[:0]
            rel_s.append(zs @ torch.cat([zs, ms]).t())
            rel_t.append(zt @ torch.cat([zt, mt]).t())
            updates += [(f"memory_s{layer}", zs, ms), (f"memory_t{layer}", zt, mt)]
        loss = (
            sum(F.mse_loss(a, b) for a, b in zip(rel_s, rel_t, strict=True)) * self.relation_weight
        )
        for k in range(len(rel_s) - 1):
            if rel_s[k].shape == rel_s[k + 1].shape:
                e_s, e_t = rel_s[k + 1] - rel_s[k], rel_t[k + 1] - rel_t[k]
                loss = loss + self.evolution_weight * F.mse_loss(e_s, e_t)
        if self.training and self.memory_size > 0:
            for name, value, bank in updates:
                self._store(name, value, bank)
        return self.loss_weight * loss


@register("cross_view", paper="zhang2024cross", family="similarity", evidence="reference")
class CrossViewConsistency(DistillationLoss):
    r"""Consistency-regularisation-based logit distillation, CRLD (Zhang et al., ACM MM 2024;
    catalogue id ``zhang2024cross``, "Cross-View Consistency Regularisation for Knowledge
    Distillation").

    A weakly (:math:`w`) and a strongly (:math:`s`) augmented view of each image; with
    :math:`\ell(a, b) = T^2\,\mathrm{KL}(\sigma(z^t_b/T)\|\sigma(z^s_a/T))` per sample and
    confidence masks :math:`m^w_i=[\max\sigma(z^t_{w,i})\ge\tau_w]`,
    :math:`m^s_i=[\max\sigma(z^t_{s,i})\ge\tau_s]`:

    .. math::
        \mathcal{L} = \frac{w}{B}\sum_i\Big[\lambda_{wv}\,m^w_i\big(\ell(w,w)+\ell(s,s)\big)
        + \lambda_{cv}\,m^s_i\big(\ell(s,w)+\ell(w,s)\big)\Big]_i

    Args:
        temperature: :math:`T` (4).
        within_weight: :math:`\lambda_{wv}` (2). cross_weight: :math:`\lambda_{cv}` (0.5).
        tau_weak: :math:`\tau_w` (0.9). tau_strong: :math:`\tau_s` (0.2).
        loss_weight: ``w``.

    Shapes: ``logits_student``/``logits_teacher`` are the weak view, ``logits_strong_student``/
    ``logits_strong_teacher`` the strong view, all ``(B, C)``. Checked against the official
    ``mdistiller/distillers/CRLD.py`` (``CRLD.forward_train``; defaults from its ``CFG.CRLD``),
    as mirrored in scx-822/CRLD-main (cross-entropy excluded): equal values and gradients.
    Filed under the "similarity" module with the rest of this survey section, although it is a
    logit method. ``zero_at_match`` is
    False: the cross-view term asks each student view to match the teacher's *other* view, so it
    stays positive when the student reproduces the teacher view by view.
    """

    zero_at_match = False

    def __init__(
        self,
        temperature: float = 4.0,
        within_weight: float = 2.0,
        cross_weight: float = 0.5,
        tau_weak: float = 0.9,
        tau_strong: float = 0.2,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.within_weight, self.cross_weight = within_weight, cross_weight
        self.tau_weak, self.tau_strong = tau_weak, tau_strong
        self.loss_weight = loss_weight

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        logits_strong_student: Tensor,
        logits_strong_teacher: Tensor,
    ) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "weak-view logits")
        check_same_shape(logits_strong_student, logits_strong_teacher, "strong-view logits")
        check_same_shape(logits_strong_student, logits_student, "strong/weak student logits")
        t = self.temperature
        p_w = F.softmax(logits_teacher.detach() / t, dim=1)
        p_s = F.softmax(logits_strong_teacher.detach() / t, dim=1)
        mask_w = (F.softmax(logits_teacher.detach(), dim=1).amax(1) >= self.tau_weak).to(p_w)
        mask_s = (F.softmax(logits_strong_teacher.detach(), dim=1).amax(1) >= self.tau_strong).to(
            p_s
        )
        t2 = t * t
        within = t2 * (soft_kl(logits_student, p_w, t) + soft_kl(logits_strong_student, p_s, t))
        cross = t2 * (soft_kl(logits_strong_student, p_w, t) + soft_kl(logits_student, p_s, t))
        loss = (
            self.within_weight * (within * mask_w).mean()
            + self.cross_weight * (cross * mask_s).mean()
        )
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        weak = logits_example(batch, dtype, generator, large)
        strong = logits_example(batch, dtype, generator, large)
        return {
            "logits_student": weak["logits_student"],
            "logits_teacher": 2 * weak["logits_teacher"],
            "logits_strong_student": strong["logits_student"],
            "logits_strong_teacher": strong["logits_teacher"],
        }


@register("bckd", paper="wang2023bckd", family="similarity", evidence="paper")
class BCKD(DistillationLoss):
    r"""Block-Correlation KD (Wang et al., ICIP 2023; catalogue id ``wang2023bckd``,
    "BCKD: Block-Correlation Knowledge Distillation").

    The correlation of adjacent blocks :math:`l, l+1` of a network (the larger map average-pooled
    to the smaller, square size) is the flattened product of their channel-mean maps,
    :math:`R_l = \mathrm{vec}(\bar F_l\,\bar F_{l+1}^\top)\in\mathbb R^{H^2}`. An MLP per block pair
    and network embeds it (followed by L2 normalisation) into the teacher's penultimate space,
    :math:`e_l`, and the frozen teacher classifier gives :math:`u_l = W e_l + b`. With the stacked
    :math:`E=[e_l]\in\mathbb R^{P\times B\times D}` and :math:`U=[u_l]`, eight discrepancies are
    measured for each of :math:`E` and :math:`U`: the full tensors, their means over the embedding,
    over the batch (both summed over block pairs) and over the block pairs; they are combined with
    weights given by the softmax of their detached values:

    .. math:: \mathcal{L} = w\sum_{n=1}^{8}\operatorname{softmax}(\mathrm{sg}\,\ell)_n\,\ell_n

    Args:
        loss_type: the discrepancy: ``"mse"`` (default), ``"smooth_l1"``, ``"huber"`` or ``"l1"``.
        student_sizes, teacher_sizes: block heights :math:`H_l` of each network, and
            ``teacher_dim`` the teacher classifier's input width: when all three are given the loss
            owns the MLPs (``Linear(H^2, 2D)-ReLU-Linear(2D, D)``, PyTorch default init; the
            teacher-side MLPs are trained too). Without them the correlations are used directly
            and :math:`H^2` must equal :math:`D` for every pair.
        loss_weight: ``w`` (the reference script's ``-b`` is 10).

    Shapes: ``feats_student`` / ``feats_teacher``: lists of block outputs ``(B, C_l, H_l, W_l)``
    (channel counts may differ); ``classifier_teacher``: the teacher's final ``nn.Linear`` (or its
    weight, or ``(weight, bias)``), used frozen. The paper's code is not public; this follows the
    public repository BTAEYANG/initialDemo (``paper_skd/SKD.py``, "Stage Relation Distilling
    Loss"), whose block-pair correlation, MLP and teacher-classifier design is the one the abstract
    describes; it is not confirmed to be the authors' code. As with ``calibrated_mask``, that
    script's truthy ``--reverse`` default, which pairs the weights with the reversed loss list, is
    not reproduced.
    """

    _LOSSES = {
        "mse": F.mse_loss,
        "smooth_l1": F.smooth_l1_loss,
        "huber": F.huber_loss,
        "l1": F.l1_loss,
    }

    def __init__(
        self,
        loss_type: str = "mse",
        student_sizes: Sequence[int] | None = None,
        teacher_sizes: Sequence[int] | None = None,
        teacher_dim: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if loss_type not in self._LOSSES:
            raise ValueError(f"loss_type must be one of {sorted(self._LOSSES)}, got {loss_type!r}")
        self.loss_type = loss_type
        self.loss_weight = loss_weight
        self.embed_s = self.embed_t = None
        if student_sizes is not None and teacher_sizes is not None and teacher_dim is not None:
            self.embed_s = nn.ModuleList(
                _MLPEmbed(min(a, b) ** 2, teacher_dim)
                for a, b in zip(student_sizes[:-1], student_sizes[1:], strict=True)
            )
            self.embed_t = nn.ModuleList(
                _MLPEmbed(min(a, b) ** 2, teacher_dim)
                for a, b in zip(teacher_sizes[:-1], teacher_sizes[1:], strict=True)
            )

    @staticmethod
    def block_correlations(feats: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for bot, top in zip(feats[:-1], feats[1:], strict=True):
            bot, top = pool_to_smaller(bot, top)
            bot, top = bot.mean(1), top.mean(1)
            out.append(_flat(torch.bmm(bot, top.transpose(1, 2))))
        return out

    def _embed(self, feats: Sequence[Tensor], embeds: nn.ModuleList | None) -> Tensor:
        rel = self.block_correlations(feats)
        if embeds is not None:
            if len(embeds) != len(rel):
                raise ValueError(f"{len(rel)} block pairs but {len(embeds)} embeddings")
            rel = [m(r) for m, r in zip(embeds, rel, strict=True)]
        return torch.stack([F.normalize(r, dim=1) for r in rel])

    def forward(
        self,
        feats_student: Sequence[Tensor],
        feats_teacher: Sequence[Tensor],
        classifier_teacher: Any,
    ) -> Tensor:
        feats_student, feats_teacher = _as_list(feats_student), _as_list(feats_teacher)
        check_same_length(feats_student, feats_teacher)
        if len(feats_student) < 2:
            raise ValueError("BCKD needs at least two blocks")
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_batch(s, t, "BCKD block feature")
        e_s = self._embed(feats_student, self.embed_s)
        e_t = self._embed([t.detach() for t in feats_teacher], self.embed_t)
        if e_s.shape != e_t.shape:
            raise ValueError(
                f"block correlations differ: student {_shape(e_s)} vs teacher {_shape(e_t)}"
            )
        u_s, u_t = (
            _linear_classifier(e_s, classifier_teacher),
            _linear_classifier(e_t, classifier_teacher),
        )
        crit = self._LOSSES[self.loss_type]
        losses = []
        for s, t in ((e_s, e_t), (u_s, u_t)):
            losses += [
                crit(s, t),
                sum(crit(a.mean(1), b.mean(1)) for a, b in zip(s, t, strict=True)),
                sum(crit(a.mean(0), b.mean(0)) for a, b in zip(s, t, strict=True)),
                crit(s.mean(0), t.mean(0)),
            ]
        return self.loss_weight * _softmax_weighted(losses)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, c, h, k = (64, 256, 16, 100) if large else (batch, 8, 4, 10)

        def r(*s):
            return torch.randn(*s, generator=generator, dtype=dtype)

        shapes = [(n, c, h, h), (n, 2 * c, h, h), (n, 2 * c, 2 * h, 2 * h)]
        return {
            "feats_student": [r(*s) for s in shapes],
            "feats_teacher": [r(*s) for s in shapes],
            "classifier_teacher": r(k, h * h) / h,
        }
