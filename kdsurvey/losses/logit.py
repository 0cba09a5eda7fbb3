"""Logit-based losses: the student matches functions of the teacher's output logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses.base import DistillationLoss, check_same_shape, logits_example
from kdsurvey.losses.registry import register


@register("kd", paper="hinton2015distilling", family="logit", evidence="reference")
class KD(DistillationLoss):
    r"""Vanilla knowledge distillation (Hinton et al., 2015; catalogue id ``hinton2015distilling``).

    .. math:: \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\sigma(z^t_b/T)\,\|\,\sigma(z^s_b/T)\big)

    The :math:`T^2` factor keeps gradient magnitudes comparable across temperatures (paper, Sec. 2).

    Args:
        temperature: softening temperature ``T`` (4 in the CIFAR-100 benchmarks of mdistiller).
        loss_weight: ``w``, multiplies the whole loss.

    Shapes: ``logits_student`` and ``logits_teacher`` are ``(B, C)``; returns a scalar.
    Checked against mdistiller ``kd_loss`` (megvii-research/mdistiller) and RepDistiller
    ``DistillKL``.
    """

    def __init__(self, temperature: float = 4.0, loss_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        log_p_s = F.log_softmax(logits_student / t, dim=1)
        log_p_t = F.log_softmax(logits_teacher.detach() / t, dim=1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        return self.loss_weight * t * t * kl


# --------------------------------------------------------------------------------------------
# Shared helpers. Every loss below is built from these so that the KL, DKD and per-sample
# temperature cores exist once.
# --------------------------------------------------------------------------------------------


def _kl_rows(log_p_s: Tensor, log_p_t: Tensor) -> Tensor:
    """Per-row ``KL(p_t || p_s)`` summed over classes (dim 1), from log-probabilities."""
    return F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1)


def _kd_rows(z_s: Tensor, z_t: Tensor) -> Tensor:
    """Per-row ``KL(softmax(z_t) || softmax(z_s))`` of already temperature-scaled logits."""
    return _kl_rows(F.log_softmax(z_s, dim=1), F.log_softmax(z_t, dim=1))


def _check_target(logits: Tensor, target: Tensor) -> None:
    """Labels must be one per sample of ``logits``; the error names both shapes."""
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits_student "
            f"{tuple(logits.shape)}: expected ({logits.shape[0]},)"
        )


def _gt_mask(logits: Tensor, target: Tensor) -> Tensor:
    """Boolean ``(B, C)`` mask of the ground-truth class of each row."""
    return F.one_hot(target.reshape(-1), logits.shape[1]).bool()


def _decoupled_log_probs(z: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """DKD's two distributions of temperature-scaled logits ``z``, as log-probabilities.

    Returns the binary ``(target, rest)`` log-probabilities ``(B, 2)`` and the log-softmax over the
    non-target classes ``(B, C)``. The target class is pushed out by subtracting 1000 from its
    logit, as every official DKD-family implementation does: its probability underflows to exactly
    0 in float32/float64, so this equals renormalising over the other classes. Two log-sum-exp
    passes serve both distributions (mdistiller needs four softmax passes).
    """
    z_rest = z - 1000.0 * gt.to(z.dtype)
    lse = torch.logsumexp(z, dim=1, keepdim=True)
    lse_rest = torch.logsumexp(z_rest, dim=1, keepdim=True)
    log_target = (z * gt).sum(1, keepdim=True) - lse
    return torch.cat([log_target, lse_rest - lse], dim=1), z_rest - lse_rest


def _nckd_rows(z_s: Tensor, z_t: Tensor, gt: Tensor) -> Tensor:
    """Per-row non-target-class KD of DKD: KL over the classes other than the label."""
    return _kl_rows(_decoupled_log_probs(z_s, gt)[1], _decoupled_log_probs(z_t, gt)[1])


def _dkd_rows(z_s: Tensor, z_t: Tensor, target: Tensor, alpha: float, beta: float) -> Tensor:
    """Per-row ``alpha * TCKD + beta * NCKD`` of temperature-scaled logits (no ``T^2``).

    TCKD is the KL between the binary (target, rest) distributions, NCKD the KL over the
    non-target classes.
    """
    gt = _gt_mask(z_s, target)
    binary_s, rest_s = _decoupled_log_probs(z_s, gt)
    binary_t, rest_t = _decoupled_log_probs(z_t, gt)
    return alpha * _kl_rows(binary_s, binary_t) + beta * _kl_rows(rest_s, rest_t)


def _standardize(z: Tensor, eps: float = 1e-7) -> Tensor:
    """Z-score over classes: unbiased std with ``eps`` added (as logit-standardization-KD)."""
    return (z - z.mean(dim=1, keepdim=True)) / (eps + z.std(dim=1, keepdim=True))


def _norm_temperature(z: Tensor, t_norm: float) -> Tensor:
    """NormKD per-sample temperature ``t_norm * std(z)`` (unbiased, not centred), ``(B, 1)``."""
    return t_norm * z.std(dim=1, keepdim=True)


def _region_rows(x: Tensor) -> Tensor:
    """SDD layout: ``(B, C, N)`` region logits to ``(N * B, C)`` rows, region-major."""
    b, c, n = x.shape
    return x.permute(2, 0, 1).reshape(n * b, c)


def _sdd_row_weights(rows_t: Tensor, target: Tensor, batch: int) -> Tensor:
    """SDD weights: 2 where a local region's teacher correctness differs from the global region's.

    Rows are region-major (region 0 = the global 1x1 region). Correctness uses the teacher's
    argmax only; global rows always get weight 1.
    """
    n = rows_t.shape[0] // batch
    correct = rows_t.argmax(dim=1) == target.repeat(n)
    global_correct = correct[:batch].repeat(n)
    return 1.0 + (correct != global_correct).to(rows_t.dtype)


def _region_logits_example(batch, dtype, generator, large, regions=5) -> dict[str, Tensor]:
    """SDD inputs: ``(B, C, N)`` region logits (N = 1 + 4 for scales [1, 2]) and labels."""
    n, classes = (256, 100) if large else (batch, 10)
    shape = (n, classes, regions)
    return {
        "logits_student": torch.randn(*shape, generator=generator, dtype=dtype),
        "logits_teacher": torch.randn(*shape, generator=generator, dtype=dtype) * 2,
        "target": torch.randint(0, classes, (n,), generator=generator),
    }


# --------------------------------------------------------------------------------------------
# Decoupled KD and its logit-normalised variants
# --------------------------------------------------------------------------------------------


@register("dkd", paper="zhao2022decoupled", family="logit", evidence="reference")
class DKD(DistillationLoss):
    r"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022; ``zhao2022decoupled``).

    KD is split into target-class KD (TCKD: binary target-vs-rest distributions
    :math:`b = [p_y, 1 - p_y]`) and non-target-class KD (NCKD: the distribution over the
    non-target classes :math:`\hat p`), weighted separately so NCKD is no longer suppressed by a
    confident teacher:

    .. math:: \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b \big[\alpha\,\mathrm{KL}(b^t_b\|b^s_b)
              + \beta\,\mathrm{KL}(\hat p^t_b\|\hat p^s_b)\big],\qquad p = \sigma(z/T)

    Args:
        alpha: TCKD weight (1.0).
        beta: NCKD weight (8.0 on CIFAR-100; 0.5 on ImageNet).
        temperature: ``T`` (4.0; 1.0 on ImageNet).
        loss_weight: ``w``.

    Shapes: ``logits_student``/``logits_teacher`` ``(B, C)``, ``target`` ``(B,)`` int64; scalar.
    Checked against mdistiller ``mdistiller/distillers/DKD.py::dkd_loss`` (megvii-research).
    Like the official code, NCKD removes the target class by subtracting 1000 from its scaled
    logit; TCKD is evaluated in log space (same value, no ``log(0)`` for saturated rows). The
    warm-up factor of the official distiller and the label cross-entropy are not part of it.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        _check_target(logits_student, target)
        t = self.temperature
        rows = _dkd_rows(
            logits_student / t, logits_teacher.detach() / t, target, self.alpha, self.beta
        )
        return self.loss_weight * t * t * rows.mean()


@register("lskd", paper="sun2024logit", family="logit", evidence="reference")
class LSKD(DistillationLoss):
    r"""Logit Standardization in KD (Sun et al., CVPR 2024; ``sun2024logit``), on vanilla KD.

    Both logit vectors are Z-scored per sample before the temperature softmax, so the student
    has to match the teacher's logit *relations*, not their range:

    .. math:: \mathcal{Z}(z) = \frac{z - \bar z}{\epsilon + \mathrm{std}(z)},\qquad
              \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\sigma(\mathcal{Z}(z^t_b)/T)\,\|\,\sigma(\mathcal{Z}(z^s_b)/T)\big)

    Args:
        temperature: base temperature ``T`` applied after standardisation (2.0).
        loss_weight: ``w`` (the official CIFAR recipe uses ``--kd-weight 9``).

    Shapes: ``(B, C)`` logits; scalar. Checked against sunshangquan/logit-standardization-KD
    ``mdistiller/distillers/KD.py::kd_loss`` (``logit_stand=True``): std is the unbiased
    estimator, ``epsilon = 1e-7`` is added to the std, gradients flow through the student's
    mean and std. The paper writes the standardisation with a plain std.
    """

    def __init__(self, temperature: float = 2.0, loss_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        rows = _kd_rows(_standardize(logits_student) / t, _standardize(logits_teacher.detach()) / t)
        return self.loss_weight * t * t * rows.mean()


@register("lskd_dkd", paper="sun2024logit", family="logit", evidence="reference")
class LSKDDKD(DistillationLoss):
    r"""Logit standardisation applied to DKD (Sun et al., CVPR 2024; ``sun2024logit``).

    .. math:: \mathcal{L} = w\,\mathrm{DKD}_{\alpha,\beta,T}
              \big(\mathcal{Z}(z^s), \mathcal{Z}(z^t)\big)

    with :math:`\mathcal{Z}` the per-sample Z-score of :class:`LSKD` and DKD as in :class:`DKD`
    (batch mean, :math:`T^2`, target class masked by ``-1000`` on the scaled logits).

    Args:
        alpha: TCKD weight (1.0). beta: NCKD weight (8.0). temperature: base temperature (2.0).
        loss_weight: ``w`` (README recipe ``--kd-weight 9`` scales the DKD loss).

    Shapes: ``(B, C)`` logits, ``(B,)`` labels; scalar. Checked against
    logit-standardization-KD ``mdistiller/distillers/DKD.py::dkd_loss`` (``logit_stand=True``).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 2.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        _check_target(logits_student, target)
        t = self.temperature
        z_s = _standardize(logits_student) / t
        z_t = _standardize(logits_teacher.detach()) / t
        rows = _dkd_rows(z_s, z_t, target, self.alpha, self.beta)
        return self.loss_weight * t * t * rows.mean()


@register("normkd", paper="chi2023normkd", family="logit", evidence="reference")
class NormKD(DistillationLoss):
    r"""NormKD: Normalized Logits for KD (2023; ``chi2023normkd``).

    Each sample gets its own temperature proportional to the spread of its logits, computed
    separately for student and teacher, so every sample's distribution is softened to a similar
    degree:

    .. math:: T^s_b = \tau\,\mathrm{std}(z^s_b),\quad T^t_b = \tau\,\mathrm{std}(z^t_b),\qquad
              \mathcal{L} = w\,\frac{1}{B}\sum_b (T^t_b)^2\,
              \mathrm{KL}\big(\sigma(z^t_b/T^t_b)\,\|\,\sigma(z^s_b/T^s_b)\big)

    Args:
        t_norm: ``tau``, the normalisation multiplier (2.0, cfg ``TEMPERATURE_NORM``).
        loss_weight: ``w`` (official ``KD_WEIGHT`` 0.9 with ``CE_WEIGHT`` 0.1).

    Shapes: ``(B, C)`` logits; scalar. Checked against gizi1/NormKD
    ``mdistiller/distillers/NormKD.py::kd_loss_normal``: unbiased std, no centring, no epsilon,
    the ``T^2`` factor uses the *teacher's* per-sample temperature, and the gradient flows
    through the student's std.
    """

    def __init__(self, t_norm: float = 2.0, loss_weight: float = 1.0):
        super().__init__()
        self.t_norm = t_norm
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        z_t = logits_teacher.detach()
        t_s = _norm_temperature(logits_student, self.t_norm)
        t_t = _norm_temperature(z_t, self.t_norm)
        rows = _kd_rows(logits_student / t_s, z_t / t_t)
        return self.loss_weight * (rows * t_t.squeeze(1) ** 2).mean()


@register("normkd_dkd", paper="chi2023normkd", family="logit", evidence="reference")
class NormKDDKD(DistillationLoss):
    r"""NormKD per-sample temperatures applied to DKD (``chi2023normkd``).

    .. math:: \mathcal{L} = w\,\frac{1}{B}\sum_b (T^t_b)^2\big[\alpha\,\mathrm{TCKD}_b
              + \beta\,\mathrm{NCKD}_b\big]

    where TCKD/NCKD are the DKD terms (:class:`DKD`) of :math:`z^s_b/T^s_b` and
    :math:`z^t_b/T^t_b`, with :math:`T_b = \tau\,\mathrm{std}(z_b)` as in :class:`NormKD`.

    Args:
        alpha: TCKD weight (1.0). beta: NCKD weight (8.0). t_norm: ``tau`` (2.0).
        loss_weight: ``w``.

    Shapes: ``(B, C)`` logits, ``(B,)`` labels; scalar. Checked against gizi1/NormKD
    ``mdistiller/distillers/NormKD_W_DKD.py::dkd_loss_norm`` (warm-up and CE left out).
    """

    def __init__(
        self, alpha: float = 1.0, beta: float = 8.0, t_norm: float = 2.0, loss_weight: float = 1.0
    ):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.t_norm = t_norm
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        _check_target(logits_student, target)
        z_t = logits_teacher.detach()
        t_s = _norm_temperature(logits_student, self.t_norm)
        t_t = _norm_temperature(z_t, self.t_norm)
        rows = _dkd_rows(logits_student / t_s, z_t / t_t, target, self.alpha, self.beta)
        return self.loss_weight * (rows * t_t.squeeze(1) ** 2).mean()


@register("generous_teacher", paper="ding2024generous", family="logit", evidence="reference")
class GenerousTeacher(DistillationLoss):
    r"""Generous Teacher (Ding et al., Image and Vision Computing 2024; ``ding2024generous``).

    A loss for *training the teacher*: the model being trained (passed as ``logits_student``)
    absorbs the non-target knowledge of a standardly trained teacher (``logits_teacher``), so it
    later hands on richer non-target knowledge. It is the NCKD term of DKD with NormKD
    per-sample temperatures:

    .. math:: \mathcal{L} = w\,\frac{1}{B}\sum_b (T^t_b)^2\,
              \mathrm{KL}\big(\hat p^t_b\,\|\,\hat p^s_b\big),\qquad
              \hat p_b = \sigma(z_b/T_b - 1000\,\mathbb{1}_{y_b}),\ T_b = \tau\,\mathrm{std}(z_b)

    Args:
        t_norm: ``tau`` = ``--Tn`` (1.0).
        loss_weight: ``w`` = ``--alpha`` (1.0).

    Shapes: ``(B, C)`` logits, ``(B,)`` labels; scalar. Checked against EifelTing/Generous-Teacher
    ``train_generous.py::train_epoch_kd_adv`` (warm-up ``min(epoch/20, 1)`` and the label CE of
    the generous teacher are left out).
    """

    def __init__(self, t_norm: float = 1.0, loss_weight: float = 1.0):
        super().__init__()
        self.t_norm = t_norm
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        _check_target(logits_student, target)
        z_t = logits_teacher.detach()
        t_s = _norm_temperature(logits_student, self.t_norm)
        t_t = _norm_temperature(z_t, self.t_norm)
        gt = _gt_mask(logits_student, target)
        rows = _nckd_rows(logits_student / t_s, z_t / t_t, gt)
        return self.loss_weight * (rows * t_t.squeeze(1) ** 2).mean()


# --------------------------------------------------------------------------------------------
# Scale Decoupled Distillation (multi-scale region logits)
# --------------------------------------------------------------------------------------------


class _SDDBase(DistillationLoss):
    """Shared input handling of the SDD losses: ``(B, C, N)`` region logits and labels."""

    def _rows(self, logits_student, logits_teacher, target):
        check_same_shape(logits_student, logits_teacher, "logits")
        if logits_student.dim() != 3:
            raise ValueError(
                f"SDD expects (B, C, N) region logits, got student {tuple(logits_student.shape)}"
            )
        _check_target(logits_student, target)
        n = logits_student.shape[2]
        rows_s = _region_rows(logits_student)
        rows_t = _region_rows(logits_teacher.detach())
        weights = _sdd_row_weights(rows_t, target, logits_student.shape[0])
        return rows_s, rows_t, target.repeat(n), weights

    @staticmethod
    def _finite_or_zero(loss: Tensor) -> Tensor:
        # The official code replaces a NaN/inf total by zero (without a host sync here).
        return torch.where(torch.isfinite(loss), loss, torch.zeros_like(loss))

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _region_logits_example(batch, dtype, generator, large)


@register("sdd_kd", paper="wei2024scaled", family="logit", evidence="reference")
class SDDKD(_SDDBase):
    r"""Scale Decoupled Distillation with KD (Wei et al., CVPR 2024; ``wei2024scaled``).

    The networks also classify SPP-pooled regions of the last feature map (a shared FC, no
    extra parameters), giving ``N`` region logit vectors per image (region 0 = global). KD is
    applied to every region; local regions whose teacher correctness disagrees with the global
    prediction's (complementary knowledge) get weight 2, the others 1:

    .. math:: \mathcal{L} = \frac{w}{NB}\sum_{n,b} \omega_{n,b}\,T^2\,
              \mathrm{KL}\big(\sigma(z^t_{b,:,n}/T)\,\|\,\sigma(z^s_{b,:,n}/T)\big),\quad
              \omega_{n,b} = 1 + \mathbb{1}\big[c_{n,b} \ne c_{0,b}\big],\
              c_{n,b} = \mathbb{1}[\arg\max z^t_{b,:,n} = y_b]

    Args:
        temperature: ``T`` (4.0).
        loss_weight: ``w`` (cfg ``KD.LOSS.KD_WEIGHT``).

    Shapes: ``(B, C, N)`` logits (N = 5 for scales [1, 2], 21 for [1, 2, 4]), ``(B,)`` labels;
    scalar. Checked against shicaiwei123/SDD-CVPR2024 ``mdistiller/distillers/KD.py::sdd_kd_loss``:
    NaN KL entries are zeroed and a non-finite total becomes 0, as there.
    """

    def __init__(self, temperature: float = 4.0, loss_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        rows_s, rows_t, _, weights = self._rows(logits_student, logits_teacher, target)
        t = self.temperature
        kl = F.kl_div(
            F.log_softmax(rows_s / t, dim=1),
            F.log_softmax(rows_t / t, dim=1),
            reduction="none",
            log_target=True,
        )
        kl = torch.where(torch.isnan(kl), torch.zeros_like(kl), kl).sum(1)
        loss = (weights * kl).sum() * (t * t) / rows_s.shape[0]
        return self.loss_weight * self._finite_or_zero(loss)


@register("sdd_dkd", paper="wei2024scaled", family="logit", evidence="reference")
class SDDDKD(_SDDBase):
    r"""Scale Decoupled Distillation with DKD (Wei et al., CVPR 2024; ``wei2024scaled``).

    Same region layout and consistent/complementary weights as :class:`SDDKD`, with the DKD
    loss of each region row:

    .. math:: \mathcal{L} = \frac{w\,T^2}{NB}\sum_{n,b} \omega_{n,b}
              \big[\alpha\,\mathrm{TCKD}_{n,b} + \beta\,\mathrm{NCKD}_{n,b}\big]

    Args:
        alpha: TCKD weight (1.0). beta: NCKD weight (8.0; CIFAR configs set it per pair).
        temperature: ``T`` (4.0). loss_weight: ``w``.

    Shapes: ``(B, C, N)`` logits, ``(B,)`` labels; scalar. Checked against SDD-CVPR2024
    ``mdistiller/distillers/SDD_DKD.py::multi_dkd`` (warm-up and CE left out; a non-finite total
    becomes 0 as there).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        rows_s, rows_t, target_r, weights = self._rows(logits_student, logits_teacher, target)
        t = self.temperature
        rows = _dkd_rows(rows_s / t, rows_t / t, target_r, self.alpha, self.beta)
        loss = (weights * rows).sum() * (t * t) / rows_s.shape[0]
        return self.loss_weight * self._finite_or_zero(loss)


# --------------------------------------------------------------------------------------------
# KD variants with a modified teacher or student distribution
# --------------------------------------------------------------------------------------------


@register("takd", paper="mirzadeh2020improved", family="logit", evidence="reference")
class TAKD(DistillationLoss):
    r"""Teacher Assistant KD (Mirzadeh et al., AAAI 2020; ``mirzadeh2020improved``).

    TAKD distils a large teacher into an intermediate-size *teacher assistant* and the assistant
    into the student; every step is trained with this KD objective, where
    ``logits_teacher`` is the step's teacher (the original teacher, then the assistant):

    .. math:: \mathcal{L} = \lambda\,T^2\,\frac{1}{BC}\sum_{b,c}
              p^t_{bc}\,\big(\log p^t_{bc} - \log p^s_{bc}\big),\qquad p = \sigma(z/T)

    Args:
        temperature: ``T`` (5.0; searched in {1, 2, 5, 10, 15, 20}).
        loss_weight: ``lambda`` (1.0; searched in [0.05, 1]); the label CE gets ``1 - lambda``.

    Shapes: ``(B, C)`` logits; scalar. Checked against imirzadeh/Teacher-Assistant-Knowledge-
    Distillation ``train.py`` (``TrainManager.train``): ``nn.KLDivLoss()`` there keeps its default
    element-wise mean, i.e. the KL is divided by ``B*C`` rather than ``B``, which this default
    reproduces. The official teacher logits are not detached; here they are.
    """

    def __init__(self, temperature: float = 5.0, loss_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        kl = _kd_rows(logits_student / t, logits_teacher.detach() / t)
        return self.loss_weight * t * t * kl.sum() / logits_student.numel()


@register("noisy_teacher", paper="sau2016deep", family="logit", evidence="paper")
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
        seed: when given, the noise comes from a private ``torch.Generator`` seeded with it
            (created on the input's device on first use); otherwise from torch's global RNG, so
            ``torch.manual_seed`` makes it reproducible.
        loss_weight: ``w``.

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


@register("spherical_kd", paper="guo2020reducing", family="logit", evidence="reference")
class SphericalKD(DistillationLoss):
    r"""Spherical KD (Guo et al., 2020; ``guo2020reducing``), as trained by the official script.

    The student's logits are rescaled to the teacher's per-sample spread before the usual KD,
    so the student does not have to reproduce the teacher's confidence (logit norm):

    .. math:: \tilde z^s_b = z^s_b\,\frac{\mathrm{std}(z^t_b)}{\mathrm{std}(z^s_b)},\qquad
              \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\sigma(z^t_b/T)\,\|\,\sigma(\tilde z^s_b/T)\big)

    Args:
        temperature: ``T`` (4.0).
        loss_weight: ``w`` = ``args.alpha`` (the label CE gets ``1 - alpha``).

    Shapes: ``(B, C)`` logits; ``target`` ``(B,)`` is accepted (the official loop uses it only
    for the excluded label CE) and ignored; scalar. Checked against
    forjiuzhou/Spherical-Knowledge-Distillation ``skd_main.py::train_kd`` (``args.SKD``): the std
    is torch's unbiased std, logits are *not* mean-centred, the teacher is used as is and the
    gradient flows through ``std(z^s)``. The paper (and the README's minimal code) instead
    layer-normalises both logit vectors (centred) and multiplies them by a fixed radius; the
    default reproduces the training script, which produced the reported results.
    """

    def __init__(self, temperature: float = 4.0, loss_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(
        self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor | None = None
    ) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        if target is not None:
            _check_target(logits_student, target)
        t = self.temperature
        z_t = logits_teacher.detach()
        scale = z_t.std(dim=1, keepdim=True) / logits_student.std(dim=1, keepdim=True)
        rows = _kd_rows(logits_student * scale / t, z_t / t)
        return self.loss_weight * t * t * rows.mean()


def _power_teacher(z_t: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """TTM's transformed teacher: ``log`` of ``softmax(z)^gamma`` renormalised, and the log of
    the power sum ``sum_c softmax(z)_c^gamma`` (WTTM's sample weight), both per row."""
    powered = gamma * F.log_softmax(z_t, dim=1)
    log_norm = torch.logsumexp(powered, dim=1, keepdim=True)
    return powered - log_norm, log_norm.squeeze(1)


@register("ttm", paper="zheng2024knowledge", family="logit", evidence="reference")
class TTM(DistillationLoss):
    r"""Transformed Teacher Matching (Zheng & Yang, ICLR 2024; ``zheng2024knowledge``).

    Temperature is applied to the teacher only: the teacher's probabilities are power-transformed
    (equivalently, the teacher is softened at temperature :math:`1/\gamma`) while the student
    stays at temperature 1, which adds a Rényi-entropy regulariser on the student:

    .. math:: \tilde p^t_b = \frac{(p^t_b)^\gamma}{\sum_c (p^t_{bc})^\gamma},\qquad
              \mathcal{L} = w\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\tilde p^t_b\,\|\,\sigma(z^s_b)\big)

    Args:
        gamma: power exponent (``--ttm_l``; 0.1 on CIFAR-100).
        loss_weight: ``w`` (``-b``; the README example uses 45).

    Shapes: ``(B, C)`` logits; scalar; no :math:`T^2` factor. Not zero when the student equals
    the teacher (it matches the *transformed* teacher), hence ``zero_at_match = False``.
    Checked against zkxufo/TTM ``distiller_zoo/ttm.py::TTM`` (computed here in log space).
    """

    zero_at_match = False

    def __init__(self, gamma: float = 0.1, loss_weight: float = 1.0):
        super().__init__()
        self.gamma = gamma
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        log_p_t, _ = _power_teacher(logits_teacher.detach(), self.gamma)
        rows = _kl_rows(F.log_softmax(logits_student, dim=1), log_p_t)
        return self.loss_weight * rows.mean()


@register("wttm", paper="zheng2024knowledge", family="logit", evidence="reference")
class WTTM(DistillationLoss):
    r"""Weighted Transformed Teacher Matching (Zheng & Yang, ICLR 2024; ``zheng2024knowledge``).

    TTM with a per-sample weight: the power sum :math:`U_\gamma(p^t_b) = \sum_c (p^t_{bc})^\gamma`
    (a Rényi-entropy measure of how smooth the teacher is on that sample):

    .. math:: \mathcal{L} = w\,\frac{1}{B}\sum_b U_\gamma(p^t_b)\,
              \mathrm{KL}\big(\tilde p^t_b\,\|\,\sigma(z^s_b)\big)

    Args:
        gamma: power exponent (``--ttm_l``, 0.1). loss_weight: ``w`` (``-b``).

    Shapes: ``(B, C)`` logits; scalar; no :math:`T^2`. ``zero_at_match = False`` as for TTM.
    Checked against zkxufo/TTM ``distiller_zoo/wttm.py::WTTM``.
    """

    zero_at_match = False

    def __init__(self, gamma: float = 0.1, loss_weight: float = 1.0):
        super().__init__()
        self.gamma = gamma
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        log_p_t, log_norm = _power_teacher(logits_teacher.detach(), self.gamma)
        rows = _kl_rows(F.log_softmax(logits_student, dim=1), log_p_t)
        return self.loss_weight * (log_norm.exp() * rows).mean()


# --------------------------------------------------------------------------------------------
# Decoupled KL (IKL / GKL)
# --------------------------------------------------------------------------------------------


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
        check_same_shape(logits_student, logits_teacher, "logits")
        z_t = logits_teacher.detach()
        weights = self._weights(z_t, class_prior)
        wmse, pair_sum, soft_ce = _dkl_terms(logits_student, z_t, weights, self.temperature)
        wmse = wmse / (pair_sum if self.normalise_by_weights else logits_student.shape[0])
        return self.loss_weight * (self.beta * wmse + self.alpha * soft_ce)


@register("ikl", paper="cui2024decoupled", family="logit", evidence="reference")
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
        alpha: soft cross-entropy weight (1.0). beta: wMSE weight (8.0; {4, 8, 12} on CIFAR).
        t2: temperature of the teacher softmax giving the weights when ``gi=False`` (100.0).
        gi: use ``class_prior`` ("global information") for the weights (False; True on ImageNet).
        loss_weight: ``w``.

    Shapes: ``(B, C)`` logits; optional ``class_prior`` ``(B, C)`` (the trainer builds it as
    ``onehot(target) @ prior`` from per-class mean teacher probabilities), required iff ``gi``.
    Scalar. Checked against jiequancui/DKL ``DKLv1/KD-dkl/mdistiller/distillers/IKL_KD.py::
    dkl_loss``: the second term is a cross-entropy (includes the teacher entropy) with no
    :math:`T^2`; the wMSE is evaluated in O(BC) instead of building the ``(B, C, C)`` tensors.
    """

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


@register("gkl", paper="cui2024decoupled", family="logit", evidence="reference")
class GKL(_DKLBase):
    r"""Generalized KL divergence loss, GKL-KD (Cui et al.; DKL v2 of ``cui2024decoupled``).

    As :class:`IKL`, but the weight vectors are raised to a power and the wMSE is normalised by
    the total pair weight of the batch rather than by the batch size:

    .. math:: \mathcal{L} = w\Big[\beta\,\frac{\tfrac14\sum_b\sum_{m,n} s^\gamma_{bm}s^\gamma_{bn}
              (\Delta z^t_{b,mn} - \Delta z^s_{b,mn})^2}{\sum_b\sum_{m,n}s^\gamma_{bm}s^\gamma_{bn}}
              - \alpha\,\frac1B\sum_b \sigma(z^t_b/T)^\top\log\sigma(z^s_b/T)\Big]

    Args:
        temperature: ``T`` (4.0). alpha: soft CE weight (1.0). beta: wMSE weight (16.0).
        gamma: exponent of the weight vectors (0.05 on CIFAR res32x4->res8x4; 0.6 on ImageNet).
        t2: teacher-softmax temperature for the weights when ``gi=False`` (4.0).
        gi: use ``class_prior`` for the weights (True). loss_weight: ``w``.

    Shapes and checks as :class:`IKL`; ``class_prior`` is required with the default ``gi=True``.
    Checked against jiequancui/DKL ``DKLv2/KD-dkl/mdistiller/distillers/GKL_KD.py::dkl_loss``.
    """

    normalise_by_weights = True

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


# --------------------------------------------------------------------------------------------
# Methods without a reference implementation check (see each docstring)
# --------------------------------------------------------------------------------------------


@register("icls", paper="li2024boosting", family="logit", evidence="paper")
class ICLS(DistillationLoss):
    r"""Intra-Class Logit distribution Smoothing (Li, Cheng & Han, IEEE T-CSVT 2024;
    ``li2024boosting``): the objective used to train the *teacher*.

    The paper observes that a distilled model keeps much more intra-class variance than a
    label-smoothed one and that this variance is what makes a good teacher, so the teacher is
    trained with a smoothing target that differs from sample to sample instead of label
    smoothing's class-constant uniform target. Here the smoothing distribution of each sample is
    its own temperature-softened prediction (detached):

    .. math:: q_b = (1-\epsilon)\,\mathrm{onehot}(y_b) + \epsilon\,
              \sigma\big(\mathrm{sg}(z_b)/T\big),\qquad
              \mathcal{L} = w\,\frac1B\sum_b -q_b^\top\log\sigma(z_b)

    Args:
        epsilon: smoothing mass (0.1, the usual label-smoothing value).
        temperature: ``T`` softening the per-sample smoothing distribution (4.0).
        loss_weight: ``w``.

    Inputs: ``logits_student`` = logits of the network being trained (the future teacher),
    ``(B, C)``; ``target`` ``(B,)``. There is no teacher input; scalar output. With
    ``epsilon = 0`` it is the plain cross-entropy.

    UNCERTAIN: no code was released and the paper's equations could not be read; this form is
    inferred from the abstract (teacher-side regularisation that preserves intra-class logit
    diversity, contrasted with label smoothing). The exact regulariser and its defaults in the
    paper may differ.
    """

    zero_at_match = False  # a cross-entropy, and there is no teacher input

    def __init__(self, epsilon: float = 0.1, temperature: float = 4.0, loss_weight: float = 1.0):
        super().__init__()
        self.epsilon = epsilon
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, target: Tensor) -> Tensor:
        _check_target(logits_student, target)
        smooth = F.softmax(logits_student.detach() / self.temperature, dim=1)
        onehot = F.one_hot(target, logits_student.shape[1]).to(logits_student.dtype)
        q = (1 - self.epsilon) * onehot + self.epsilon * smooth
        ce = -(q * F.log_softmax(logits_student, dim=1)).sum(1)
        return self.loss_weight * ce.mean()

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = logits_example(batch, dtype, generator, large, with_target=True)
        del out["logits_teacher"]
        return out


@register("response_kd", paper="song2023exploring", family="logit", evidence="reference")
class ResponseKD(DistillationLoss):
    r"""Efficient Distillation (Song et al., ACM MM 2023; ``song2023exploring``).

    The paper finds that more confident teacher predictions distil better and that the samples
    the teacher gets wrong must be kept. Its recipe first trains with weighted soft labels
    (``stage=1``) and then, for the final epochs, switches to a sharpened teacher (temperature
    on the teacher only) where samples that the student already fits better than the teacher,
    *and* that the teacher gets right, fall back to the (lightly smoothed) label, while every
    other sample, teacher-wrong ones included, is distilled (``stage=2``, default):

    .. math:: \text{stage 2: } \mathcal{L} = \frac{w}{B}\sum_b
              \begin{cases} -\tilde y_b^\top\log\sigma(z^s_b) & \ell^s_b < \ell^t_b
              \wedge \arg\max z^t_b = y_b\\
              -\sigma(z^t_b/T)^\top\log\sigma(z^s_b) & \text{otherwise}\end{cases}

    with :math:`\ell^s_b = -\log\sigma(z^s_b)_{y_b}`, :math:`\ell^t_b = -\log\sigma(z^t_b/T)_{y_b}`,
    :math:`\tilde y = (1-\epsilon)\,\mathrm{onehot}(y) + \epsilon/C`.

    .. math:: \text{stage 1: } \mathcal{L} = \frac{w\,T^2}{B}\sum_b \omega_b^{\beta}\,
              \big(-\sigma(z^t_b/T)^\top\log\sigma(z^s_b/T)\big),\quad
              \omega_b = 1 - e^{-\ell^s_b/\ell^t_b}

    (weighted soft labels; here both :math:`\ell` use temperature ``T``, weights detached).

    Args:
        stage: 2 (final-stage objective, default) or 1 (main-stage weighted soft labels).
        temperature: ``T``; ``None`` picks the official value: 0.7 (stage 2, teacher only) or 2.0.
        beta: exponent of the stage-1 sample weight (1.0).
        label_smoothing: ``epsilon`` of the stage-2 label target (0.01).
        loss_weight: ``w`` (the official stage 1 uses 0.5 next to a label-smoothed CE; stage 2
            uses 1 and no other term).

    Shapes: ``(B, C)`` logits, ``(B,)`` labels; scalar. Both stages are cross-entropies (not 0
    when the logits match). Checked against lsongx/EffDstl ``mmcls/models/losses/wsl_loss.py``
    (``WSLLoss``), ``configs/res18_distill_tres34.py`` and ``mmcls/core/hooks/wslv2_hook.py``:
    equal values and gradients in float64 for both stages. The official stage-2 label target
    hard-codes ``0.01/1000`` (ImageNet); here it is ``epsilon / C``, identical for 1000 classes.
    The official schedule also swaps the teacher network between the stages; that is outside the
    loss.
    """

    zero_at_match = False

    def __init__(
        self,
        stage: int = 2,
        temperature: float | None = None,
        beta: float = 1.0,
        label_smoothing: float = 0.01,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.stage = stage
        self.temperature = temperature if temperature is not None else (0.7 if stage == 2 else 2.0)
        self.beta = beta
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        _check_target(logits_student, target)
        t = self.temperature
        z_t = logits_teacher.detach()
        log_p_t = F.log_softmax(z_t / t, dim=1)
        idx = target.unsqueeze(1)
        ce_t = -log_p_t.gather(1, idx).squeeze(1)
        if self.stage == 1:
            log_p_s = F.log_softmax(logits_student / t, dim=1)
            distill = -(log_p_t.exp() * log_p_s).sum(1)
            ce_s = -log_p_s.gather(1, idx).squeeze(1).detach()
            weight = 1 - torch.exp(-(ce_s / ce_t).clamp_min(0))
            return self.loss_weight * t * t * (weight.pow(self.beta) * distill).mean()
        log_p_s = F.log_softmax(logits_student, dim=1)
        distill = -(log_p_t.exp() * log_p_s).sum(1)
        c = logits_student.shape[1]
        eps = self.label_smoothing
        label = (1 - eps) * F.one_hot(target, c).to(log_p_s.dtype) + eps / c
        label_ce = -(label * log_p_s).sum(1)
        ce_s = -log_p_s.gather(1, idx).squeeze(1).detach()
        use_label = (ce_s < ce_t) & (z_t.argmax(dim=1) == target)
        return self.loss_weight * torch.where(use_label, label_ce, distill).mean()


@register("sfkd", paper="yuan2024student", family="logit", evidence="paper")
class SFKD(DistillationLoss):
    r"""Student-Friendly KD (Yuan, Lang & Quan, Knowledge-Based Systems 2024; ``yuan2024student``).

    The teacher's knowledge is simplified before it is taught: its logits are softened by the
    temperature, then a *learning simplifier* (self-attention, here across the samples of the
    batch) rewrites them; the simplifier is trained jointly with the student by the same KD loss:

    .. math:: X = z^t/T,\quad Y = \sigma\!\Big(\frac{(XW_Q)(XW_K)^\top}{\sqrt C}\Big)XW_V,\qquad
              \mathcal{L} = w\,T^2\,\frac1B\sum_b
              \mathrm{KL}\big(\sigma(Y_b)\,\|\,\sigma(z^s_b/T)\big)

    Args:
        temperature: ``T`` of the softening processing and of the student (4.0).
        num_classes: ``C``; when given, :math:`W_Q, W_K, W_V` are learnable ``C x C`` linear
            maps (no bias) initialised to the identity, so training starts from the
            parameter-free simplifier; ``None`` (default) uses that parameter-free core
            (identity projections, no parameters).
        loss_weight: ``w``.

    Shapes: ``(B, C)`` logits; scalar. Not zero when the student equals the teacher: the
    student matches the *simplified* teacher (``zero_at_match = False``). Invariant to the batch
    order (attention is permutation-equivariant).

    UNCERTAIN: no code was released and the paper's equations could not be read; the form of
    the simplifier (single-head self-attention over the batch on softened logits, no residual)
    and its initialisation are inferred from the abstract and may differ from the paper.
    """

    zero_at_match = False

    def __init__(
        self, temperature: float = 4.0, num_classes: int | None = None, loss_weight: float = 1.0
    ):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.simplifier = None
        if num_classes is not None:
            self.simplifier = nn.ModuleDict(
                {k: nn.Linear(num_classes, num_classes, bias=False) for k in ("q", "k", "v")}
            )
            for layer in self.simplifier.values():
                nn.init.eye_(layer.weight)

    def simplify(self, x: Tensor) -> Tensor:
        """The learning simplifier applied to softened teacher logits ``x`` ``(B, C)``."""
        if self.simplifier is None:
            q = k = v = x
        else:
            q, k, v = (self.simplifier[name](x) for name in ("q", "k", "v"))
        attn = F.softmax(q @ k.transpose(0, 1) / x.shape[1] ** 0.5, dim=1)
        return attn @ v

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        y = self.simplify(logits_teacher.detach() / t)
        rows = _kd_rows(logits_student / t, y)
        return self.loss_weight * t * t * rows.mean()


@register("ntce_kd", paper="li2024ntce", family="logit", evidence="reference")
class NTCEKD(DistillationLoss):
    r"""Non-Target-Class-Enhanced KD, magnitude-enhanced KL (Li et al., Sensors 2024;
    ``li2024ntce``).

    The softmax lets the target class dominate the KD signal. MKL shrinks the target class by
    several multiples of the teacher's top-1 margin :math:`m_b = z^t_{b,(1)} - z^t_{b,(2)}` (its
    largest minus its second largest logit) and averages the KD losses, so that the non-target
    classes weigh more. The teacher's top-1 class :math:`\hat y_b` and the student's label class
    :math:`y_b` are shrunk by the same amount :math:`f_k m_b`:

    .. math:: \mathcal{L} = w\,\frac{T^2}{K}\sum_{k=1}^{K}\frac1B\sum_b
              \mathrm{KL}\big(\sigma((z^t_b - f_k m_b\,\mathbb{1}_{\hat y_b})/T)\,\|\,
              \sigma((z^s_b - f_k m_b\,\mathbb{1}_{y_b})/T)\big)

    Factor 0 is plain KD; negative factors enlarge the target class instead.

    Args:
        temperature: ``T`` (4.0; the official ImageNet setting is 1.0).
        shrink_factors: the :math:`f_k` (the official default ``(2, 1.5, 1, 0.5, 0, -0.5, -1)``;
            its ResNet32x4/ResNet8x4 setting drops the negative ones).
        loss_weight: ``w``. The official code multiplies by ``KD_WEIGHT`` (8 by default, 2 for
            several CIFAR-100 pairs and ImageNet) and ramps it in linearly over the first 20
            epochs; both are training-schedule choices left to the caller.

    Shapes: ``(B, C)`` logits with ``C >= 2``, ``(B,)`` labels; scalar. ``zero_at_match`` is
    False: with equal logits the loss is 0 only for the rows whose label is the teacher's top-1
    class. The paper's diversity-based data augmentation (DDA) acts on the inputs (the loss is
    applied to the augmented batch too) and is not part of the loss.

    Checked against the official code, https://github.com/lan-long/NTCE-KD
    (``mdistiller/distillers/NTCE.py``, configuration in ``mdistiller/engine/cfg.py``).
    """

    zero_at_match = False

    def __init__(
        self,
        temperature: float = 4.0,
        shrink_factors: tuple[float, ...] = (2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0),
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if not shrink_factors:
            raise ValueError("shrink_factors must not be empty")
        self.temperature = temperature
        self.shrink_factors = tuple(float(f) for f in shrink_factors)
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "logits")
        _check_target(logits_student, target)
        if logits_student.shape[1] < 2:
            raise ValueError(
                f"ntce_kd needs at least 2 classes, got logits {tuple(logits_student.shape)}"
            )
        t = self.temperature
        z_t = logits_teacher.detach()
        top2 = z_t.topk(2, dim=1)
        margin = top2.values[:, 0] - top2.values[:, 1]  # (B,)
        factors = torch.tensor(self.shrink_factors, dtype=z_t.dtype, device=z_t.device)
        shift = factors.view(-1, 1, 1) * margin.view(1, -1, 1)  # (K, B, 1)
        top1 = F.one_hot(top2.indices[:, 0], z_t.shape[1]).to(z_t.dtype)
        label = _gt_mask(logits_student, target).to(z_t.dtype)
        log_p_t = F.log_softmax((z_t.unsqueeze(0) - shift * top1) / t, dim=2)
        log_p_s = F.log_softmax((logits_student.unsqueeze(0) - shift * label) / t, dim=2)
        kl = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(2)
        return self.loss_weight * t * t * kl.mean()
