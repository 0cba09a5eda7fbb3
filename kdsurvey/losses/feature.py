"""Feature-based losses: the student matches the teacher's intermediate features or embeddings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses.base import (
    DistillationLoss,
    check_same_length,
    check_same_shape,
    pool_to_smaller,
)
from kdsurvey.losses.registry import register

# --------------------------------------------------------------------------------------------------
# shared helpers


def _check_batch(student: Tensor, teacher: Tensor, what: str = "feature") -> None:
    """Raise ``ValueError`` naming both shapes when the batch sizes (or ranks) differ."""
    if student.dim() != teacher.dim() or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{what} batch sizes differ: student {tuple(student.shape)} vs teacher "
            f"{tuple(teacher.shape)}"
        )


def _check_layers(students: Sequence[Tensor], teachers: Sequence[Tensor]) -> None:
    check_same_length(students, teachers)
    for s, t in zip(students, teachers, strict=True):
        _check_batch(s, t)


def _as_list(channels, name: str) -> list[int] | None:
    if channels is None:
        return None
    if isinstance(channels, int):
        return [channels]
    out = [int(c) for c in channels]
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def _layer_channels(student_channels, teacher_channels) -> list[tuple[int, int]] | None:
    """Pairs (student, teacher) of channel counts, or None when no adapter is wanted."""
    s = _as_list(student_channels, "student_channels")
    t = _as_list(teacher_channels, "teacher_channels")
    if s is None and t is None:
        return None
    if s is None or t is None:
        raise ValueError("give both student_channels and teacher_channels, or neither")
    if len(s) != len(t):
        raise ValueError(f"{len(s)} student channel counts but {len(t)} teacher channel counts")
    return list(zip(s, t, strict=True))


def _conv_bn_connector(c_in: int, c_out: int) -> nn.Sequential:
    """1x1 conv (no bias) + BN, He-normal init over fan-out, BN (1, 0): the OFD/AB/AttnFD
    connector (``build_feature_connector`` of clovaai/overhaul-distillation)."""
    conv = nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / c_out))
    bn = nn.BatchNorm2d(c_out)
    return nn.Sequential(conv, bn)


def _layer_example(batch, dtype, generator, large, layers) -> dict:
    """Lists of feature maps, one size per layer (halving the spatial size, as in a backbone)."""
    if large:
        shapes = [(64, 256, 16, 16), (64, 256, 8, 8), (64, 256, 4, 4)][:layers]
    else:
        shapes = [(batch, 8, 4, 4), (batch, 8, 2, 2), (batch, 8, 1, 1)][:layers]

    def rand(shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    return {
        "feats_student": [rand(s) for s in shapes],
        "feats_teacher": [rand(s) for s in shapes],
    }


# --------------------------------------------------------------------------------------------------
# FitNets


@register("fitnet", paper="romero2015fitnets", family="feature", evidence="reference")
class FitNet(DistillationLoss):
    r"""FitNets hint loss ("FitNets: Hints for Thin Deep Nets", Romero et al., ICLR 2015;
    catalogue id ``romero2015fitnets``).

    .. math:: \mathcal{L} = w\,\frac{1}{BCHW}\,\big\lVert r(F^s) - F^t \big\rVert_2^2

    ``r`` is the learnable regressor mapping the student's guided layer to the teacher's hint layer.

    Args:
        student_channels, teacher_channels: when both are given the loss owns the regressor ``r``:
            1x1 conv (with bias) + BatchNorm + ReLU, PyTorch default init (RepDistiller/mdistiller
            ``ConvReg`` for equal spatial sizes). ``None`` (default): ``feat_student`` is already
            regressed and no adapter is applied.
        loss_weight: ``w`` (default 1; RepDistiller/mdistiller train with 100).

    Shapes: ``feat_student`` ``(B, C_s, H, W)`` (``C_s = C_t`` without regressor), ``feat_teacher``
    ``(B, C_t, H, W)``; returns a scalar.

    Checked against HobbitLong/RepDistiller ``distiller_zoo/FitNet.py`` (``HintLoss``: ``MSELoss``,
    mean over all elements) and mdistiller ``distillers/FitNet.py``. The paper writes
    :math:`\tfrac12\lVert\cdot\rVert^2` summed per sample and trains the hint stage separately; the
    official code's mean squared error is used here (the factor is absorbed by ``w``).
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = _layer_channels(student_channels, teacher_channels)
        self.regressor = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            self.regressor = nn.Sequential(
                nn.Conv2d(c_s, c_t, kernel_size=1), nn.BatchNorm2d(c_t), nn.ReLU()
            )

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_batch(feat_student, feat_teacher)
        if self.regressor is not None:
            feat_student = self.regressor(feat_student)
        check_same_shape(feat_student, feat_teacher, "hint feature")
        return self.loss_weight * F.mse_loss(feat_student, feat_teacher.detach())


# --------------------------------------------------------------------------------------------------
# Attention transfer


def _attention_map(feat: Tensor, p: float) -> Tensor:
    return F.normalize(feat.pow(p).mean(1).flatten(1), dim=1)


@register("at", paper="zagoruyko2017paying", family="feature", evidence="reference")
class AT(DistillationLoss):
    r"""Attention transfer ("Paying More Attention to Attention: Improving the Performance of
    Convolutional Neural Networks via Attention Transfer", Zagoruyko & Komodakis, ICLR 2017;
    catalogue id ``zagoruyko2017paying``).

    .. math::
        a(F) = \frac{\operatorname{vec}(\bar F)}{\lVert\operatorname{vec}(\bar F)\rVert_2},\quad
        \bar F = \frac1C\sum_c F_c^{\,p},\qquad
        \mathcal{L} = w \sum_l \frac{1}{B\,H_lW_l}\sum_b \big\lVert a(F^s_{l,b}) - a(F^t_{l,b})
        \big\rVert_2^2

    Args:
        p: power applied to the activations before the channel mean (default 2).
        loss_weight: ``w`` = the paper's :math:`\beta` (default 1; the authors train with 1000).

    Shapes: ``feats_student`` and ``feats_teacher`` are lists of ``(B, C, H, W)`` maps, one per
    layer; channel counts may differ, and the spatially larger map of a pair is
    adaptive-average-pooled to the smaller one. Returns a scalar.

    Checked against mdistiller ``distillers/AT.py`` (``at_loss``), identical to the authors'
    szagoruyko/attention-transfer ``utils.at_loss`` and RepDistiller ``Attention``. The paper's Eq.
    2 takes a per-sample L2 norm of the difference with a 1/2 factor; the official code uses the
    mean of the squared difference over batch and positions, reproduced here.
    """

    def __init__(self, p: float = 2.0, loss_weight: float = 1.0):
        super().__init__()
        self.p = p
        self.loss_weight = loss_weight

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        _check_layers(feats_student, feats_teacher)
        total = 0.0
        for fs, ft in zip(feats_student, feats_teacher, strict=True):
            fs, ft = pool_to_smaller(fs, ft.detach())
            total = total + (_attention_map(fs, self.p) - _attention_map(ft, self.p)).pow(2).mean()
        return self.loss_weight * total

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _layer_example(batch, dtype, generator, large, layers=2)


# --------------------------------------------------------------------------------------------------
# Neuron selectivity transfer


def _nst_layer(fs: Tensor, ft: Tensor) -> Tensor:
    """Squared MMD with kernel (x.y)^2 between the L2-normalised channel vectors of one layer.

    ``mean K_tt + mean K_ss - 2 mean K_st`` equals ``(1/B) sum_b || S^T S / C_s - T^T T / C_t
    ||_F^2`` (S: ``C_s x HW``), since ``sum_ij (s_i.t_j)^2 = <S^T S, T^T T>_F``. The position-Gram
    form is used when it is cheaper (HW smaller than the channel counts); both are exact.
    """
    b, cs = fs.shape[:2]
    ct = ft.shape[1]
    s = F.normalize(fs.flatten(2), dim=2)
    t = F.normalize(ft.flatten(2), dim=2)
    hw = s.shape[2]
    if hw * hw * (cs + ct) < cs * cs * hw + cs * ct * hw:
        gs = torch.bmm(s.transpose(1, 2), s) / cs
        gt = torch.bmm(t.transpose(1, 2), t) / ct
        return (gs - gt).pow(2).sum() / b
    k_tt = torch.bmm(t, t.transpose(1, 2)).pow(2).mean()
    k_ss = torch.bmm(s, s.transpose(1, 2)).pow(2).mean()
    k_st = torch.bmm(s, t.transpose(1, 2)).pow(2).mean()
    return k_tt + k_ss - 2 * k_st


@register("nst", paper="huang2017like", family="feature", evidence="reference")
class NST(DistillationLoss):
    r"""Neuron selectivity transfer ("Like What You Like: Knowledge Distill via Neuron Selectivity
    Transfer", Huang & Wang, 2017; catalogue id ``huang2017like``).

    Each channel's activation map, flattened over positions and L2-normalised, is a sample of the
    layer's distribution; the squared MMD with the polynomial kernel :math:`k(x,y)=(x^\top y)^2`:

    .. math::
        \mathcal{L} = w\sum_l \frac1B\sum_b\Big[\overline{k(t_i,t_{i'})} + \overline{k(s_j,s_{j'})}
        - 2\,\overline{k(s_j,t_i)}\Big]

    where the bars are means over the channel pairs.

    Args:
        loss_weight: ``w`` (default 1; mdistiller trains with 50).

    Shapes: lists of ``(B, C, H, W)`` per layer; channel counts may differ; the spatially larger map
    is adaptive-average-pooled to the smaller. Returns a scalar.

    Checked against mdistiller ``distillers/NST.py`` (``nst_loss``), identical to RepDistiller
    ``NSTLoss``. The authors' MXNet code drops the constant teacher-teacher term, adds a kernel
    constant and returns per-sample values; the PyTorch reference's full form is used (zero when the
    student equals the teacher). Computed with batched matrix products instead of the reference's
    broadcast ``(B, C, C, HW)`` tensor, so memory stays ``O(B C^2)``.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        _check_layers(feats_student, feats_teacher)
        total = 0.0
        for fs, ft in zip(feats_student, feats_teacher, strict=True):
            fs, ft = pool_to_smaller(fs, ft.detach())
            total = total + _nst_layer(fs, ft)
        return self.loss_weight * total

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _layer_example(batch, dtype, generator, large, layers=2)


# --------------------------------------------------------------------------------------------------
# Factor transfer


class _Paraphraser(nn.Module):
    """Teacher paraphraser: 3-conv encoder to the factor, 3-deconv decoder (no BN, LeakyReLU 0.1),
    as in the authors' Factor-Transfer-pytorch ``Models/FeatureProjection.py``."""

    def __init__(self, channels: int, factor_channels: int):
        super().__init__()
        act = nn.LeakyReLU(0.1)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            act,
            nn.Conv2d(channels, factor_channels, 3, padding=1),
            act,
            nn.Conv2d(factor_channels, factor_channels, 3, padding=1),
            act,
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(factor_channels, factor_channels, 3, padding=1),
            act,
            nn.ConvTranspose2d(factor_channels, channels, 3, padding=1),
            act,
            nn.ConvTranspose2d(channels, channels, 3, padding=1),
            act,
        )


def _factor(x: Tensor) -> Tensor:
    return F.normalize(x.flatten(1), dim=1)


@register("ft", paper="kim2018paraphrasing", family="feature", evidence="reference")
class FT(DistillationLoss):
    r"""Factor transfer ("Paraphrasing Complex Network: Network Compression via Factor Transfer",
    Kim, Park & Kwak, NeurIPS 2018; catalogue id ``kim2018paraphrasing``).

    .. math::
        \mathcal{L} = w\,\frac{1}{B\,D}\Big\lVert \frac{F_S}{\lVert F_S\rVert_2} -
        \frac{F_T}{\lVert F_T\rVert_2}\Big\rVert_1,\qquad
        F_T = P_{enc}(T),\; F_S = \mathrm{Tr}(S)

    with the norms taken per sample over all ``D = C H W`` factor elements (paper: p = 1).

    Args:
        student_channels, teacher_channels: when both are given the loss owns the teacher
            **paraphraser** ``P`` (encoder/decoder of 3 conv / 3 transposed conv, LeakyReLU 0.1, no
            BN, PyTorch default init) and the student **translator** ``Tr`` (3 convs, LeakyReLU
            0.1), both producing ``round(rate * C_t)`` factor channels. The paraphraser is trained
            first, alone, with :meth:`reconstruction_loss` (L1 reconstruction of the teacher
            feature, as the authors' ``train_Paraphraser.py``) and is frozen during distillation:
            its factor is detached in :meth:`forward`, so only the translator (and the student)
            learn from this loss. ``None`` (default): the inputs are already factors and no module
            is applied.
        rate: paraphrase rate ``k`` (default 0.5).
        loss_weight: ``w`` = the paper's :math:`\beta` (default 1; the authors train with 500).

    Shapes: ``feat_student`` and ``feat_teacher`` ``(B, ...)`` with the same number of elements per
    sample (factors ``(B, C_f, H, W)``); returns a scalar.

    Checked against the authors' Jangho-Kim/Factor-Transfer-pytorch (``utils.FT`` with
    ``nn.L1Loss`` in ``train_student.py``). RepDistiller's ``FactorTransfer`` uses an
    attention-style factor instead; it is a different loss and not reproduced.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        rate: float = 0.5,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.rate = rate
        pairs = _layer_channels(student_channels, teacher_channels)
        self.paraphraser = self.translator = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            c_f = max(1, int(round(c_t * rate)))
            self.paraphraser = _Paraphraser(c_t, c_f)
            act = nn.LeakyReLU(0.1)
            self.translator = nn.Sequential(
                nn.Conv2d(c_s, c_s, 3, padding=1),
                act,
                nn.Conv2d(c_s, c_f, 3, padding=1),
                act,
                nn.Conv2d(c_f, c_f, 3, padding=1),
                act,
            )

    def reconstruction_loss(self, feat_teacher: Tensor) -> Tensor:
        """Stage-1 objective of the paraphraser: mean |decoder(encoder(T)) - T|."""
        if self.paraphraser is None:
            raise ValueError("this FT loss has no paraphraser (built without channel sizes)")
        target = feat_teacher.detach()
        rec = self.paraphraser.decoder(self.paraphraser.encoder(target))
        return F.l1_loss(rec, target)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_batch(feat_student, feat_teacher)
        feat_teacher = feat_teacher.detach()
        if self.translator is not None:
            feat_student = self.translator(feat_student)
            with torch.no_grad():
                feat_teacher = self.paraphraser.encoder(feat_teacher)
        if feat_student[0].numel() != feat_teacher[0].numel():
            raise ValueError(
                f"factor sizes differ: student {tuple(feat_student.shape)} vs teacher "
                f"{tuple(feat_teacher.shape)}"
            )
        return self.loss_weight * F.l1_loss(_factor(feat_student), _factor(feat_teacher))


# --------------------------------------------------------------------------------------------------
# Activation boundaries


def _layer_weights(n: int) -> list[float]:
    """Deepest layer 1, the one before 1/2, then 1/4, ... (AB and OFD)."""
    return [2.0 ** (i - n + 1) for i in range(n)]


@register("ab", paper="heo2019knowledge", family="feature", evidence="reference")
class AB(DistillationLoss):
    r"""Activation-boundary distillation ("Knowledge Transfer via Distillation of Activation
    Boundaries Formed by Hidden Neurons", Heo et al., AAAI 2019; catalogue id ``heo2019knowledge``).

    Alternative (squared-hinge) loss on the pre-ReLU responses :math:`s=r(S)` of the connected
    student and :math:`t` of the teacher, with margin :math:`\mu`:

    .. math::
        \ell(s,t) = (s+\mu)^2\,[s>-\mu]\,[t\le 0] + (s-\mu)^2\,[s\le\mu]\,[t>0],\qquad
        \mathcal{L} = w\,\frac{3}{1000\,B}\sum_{l=1}^{n} 2^{\,l-n}\sum \ell(s_l, t_l)

    Args:
        margin: :math:`\mu` (default 1).
        student_channels, teacher_channels: sequences (one per layer) of channel counts; when given
            the loss owns one connector per layer, 1x1 conv (no bias) + BN, He-normal init (the
            authors' connector). ``None`` (default): the student features are already connected.
        loss_weight: ``w`` (default 1).

    Shapes: lists ``feats_student``/``feats_teacher`` of ``(B, C, H, W)`` pre-ReLU maps ordered
    shallow to deep, equal shapes per layer; returns a scalar.

    Checked against RepDistiller ``distiller_zoo/AB.py`` (``ABLoss``, per-layer list summed as in
    ``helper/pretrain.py``), identical to the authors' bhheo/AB_distillation
    ``criterion_alternative_L2``. The ``3/1000`` and ``1/B`` scales and the layer weights are the
    official code's. In the official recipe AB only initialises the student (pre-training stage).
    Not zero when the student equals the teacher: the margin pushes responses beyond the boundary
    (``zero_at_match = False``).
    """

    zero_at_match = False

    def __init__(
        self,
        margin: float = 1.0,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.margin = margin
        self.loss_weight = loss_weight
        pairs = _layer_channels(student_channels, teacher_channels)
        self.connectors = None
        if pairs is not None:
            self.connectors = nn.ModuleList(_conv_bn_connector(s, t) for s, t in pairs)

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        _check_layers(feats_student, feats_teacher)
        if self.connectors is not None:
            if len(self.connectors) != len(feats_student):
                raise ValueError(f"{len(self.connectors)} connectors, {len(feats_student)} layers")
            feats_student = [c(f) for c, f in zip(self.connectors, feats_student, strict=True)]
        n = len(feats_student)
        m = self.margin
        total = 0.0
        for w, s, t in zip(_layer_weights(n), feats_student, feats_teacher, strict=True):
            check_same_shape(s, t, "feature")
            # t > 0: (m - s)^2 where s <= m; t <= 0: (s + m)^2 where s > -m; i.e. relu(m -/+ s)^2.
            sign = 1.0 - 2.0 * (t.detach() > 0).to(s.dtype)
            total = total + w * F.relu(m + sign * s).pow(2).sum()
        batch = feats_student[0].shape[0]
        return self.loss_weight * total / batch * 3.0 / 1000.0

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _layer_example(batch, dtype, generator, large, layers=3)


# --------------------------------------------------------------------------------------------------
# Overhaul of feature distillation


def ofd_margin(std: Tensor, mean: Tensor) -> Tensor:
    r"""Per-channel OFD margin :math:`E[x \mid x<0]` for :math:`x\sim\mathcal N(\mu,\sigma^2)`,
    or :math:`-3\sigma` when :math:`P(x<0)\le 0.001` (``get_margin_from_BN`` of the official
    code)."""
    s = std.abs()
    ratio = mean / s
    cdf = torch.special.ndtr(-ratio)
    safe = cdf.clamp_min(1e-30)
    expected = -s * torch.exp(-0.5 * ratio * ratio) / math.sqrt(2 * math.pi) / safe + mean
    return torch.where(cdf > 0.001, expected, -3.0 * s)


@register("ofd", paper="heo2019comprehensive", family="feature", evidence="reference")
class OFD(DistillationLoss):
    r"""Overhaul feature distillation ("A Comprehensive Overhaul of Feature Distillation", Heo et
    al., ICCV 2019; catalogue id ``heo2019comprehensive``).

    Partial L2 between connected student pre-ReLU features :math:`s=r(S)` and the teacher's pre-ReLU
    features clipped from below by the per-channel margin :math:`m` (expected negative response):

    .. math::
        t' = \max(t, m),\quad
        \mathcal{L} = \frac{w}{B}\sum_{l=1}^{n}\frac{1}{2^{\,n-l}}\sum (s_l - t'_l)^2\,
        \big[s_l > t'_l \ \lor\ t'_l > 0\big]

    Args:
        student_channels, teacher_channels: sequences (one per layer); when given the loss owns one
            connector per layer, 1x1 conv (no bias) + BN, He-normal init, BN weight 1 / bias 0 (the
            official ``build_feature_connector``). ``None`` (default): features already connected.
        loss_weight: ``w`` (default 1; the official training uses 1e-3 on CIFAR, 1e-4 on ImageNet).

    Inputs: ``feats_student``/``feats_teacher`` lists of ``(B, C, H, W)`` pre-ReLU maps (shallow to
    deep, equal shapes per layer); ``margins``: list of ``(1, C, 1, 1)`` margins per layer, as the
    official code derives them from the teacher's BN (use :meth:`margins_from_bn` on those layers).
    When ``margins`` is ``None`` they are estimated with the same Gaussian formula from the teacher
    batch's per-channel mean and standard deviation (an approximation of the BN parameters, which is
    what the BN output's distribution is expected to follow). Returns a scalar.

    Checked against clovaai/overhaul-distillation ``CIFAR-100/distiller.py`` (``distillation_loss``,
    ``Distiller.forward`` layer weights and the ``/ batch_size`` of ``train_with_distillation.py``);
    cross-checked with mdistiller ``OFD.feat_loss``. Zero when the student equals the teacher and
    margins are non-positive (always so for the official margins).
    """

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = _layer_channels(student_channels, teacher_channels)
        self.connectors = None
        if pairs is not None:
            self.connectors = nn.ModuleList(_conv_bn_connector(s, t) for s, t in pairs)

    @staticmethod
    def margins_from_bn(bn: nn.BatchNorm2d) -> Tensor:
        """``(1, C, 1, 1)`` margins from the affine parameters of the BN producing a teacher
        feature."""
        with torch.no_grad():
            # float64 as the official code (Python floats), then the BN's dtype
            margin = ofd_margin(bn.weight.double(), bn.bias.double()).to(bn.weight.dtype)
            return margin.view(1, -1, 1, 1)

    @staticmethod
    def margins_from_batch(feat_teacher: Tensor) -> Tensor:
        """``(1, C, 1, 1)`` margins estimated from a teacher batch's per-channel statistics."""
        with torch.no_grad():
            std, mean = torch.std_mean(feat_teacher.detach(), dim=(0, 2, 3), keepdim=True)
            return ofd_margin(std.clamp_min(1e-6), mean)

    def forward(
        self,
        feats_student: list[Tensor],
        feats_teacher: list[Tensor],
        margins: list[Tensor] | None = None,
    ) -> Tensor:
        _check_layers(feats_student, feats_teacher)
        if self.connectors is not None:
            if len(self.connectors) != len(feats_student):
                raise ValueError(f"{len(self.connectors)} connectors, {len(feats_student)} layers")
            feats_student = [c(f) for c, f in zip(self.connectors, feats_student, strict=True)]
        if margins is None:
            margins = [self.margins_from_batch(t) for t in feats_teacher]
        elif len(margins) != len(feats_teacher):
            raise ValueError(f"{len(margins)} margins for {len(feats_teacher)} layers")
        n = len(feats_student)
        total = 0.0
        for i, (s, t, m) in enumerate(zip(feats_student, feats_teacher, margins, strict=True)):
            check_same_shape(s, t, "feature")
            t = torch.maximum(t.detach(), m.detach().to(t.dtype))
            partial = F.mse_loss(s, t, reduction="none") * ((s > t) | (t > 0)).to(s.dtype)
            total = total + partial.sum() / 2.0 ** (n - 1 - i)
        return self.loss_weight * total / feats_student[0].shape[0]

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = _layer_example(batch, dtype, generator, large, layers=3)
        out["margins"] = [
            -(torch.rand(1, t.shape[1], 1, 1, generator=generator, dtype=dtype) + 0.1)
            for t in out["feats_teacher"]
        ]
        return out


# --------------------------------------------------------------------------------------------------
# ReviewKD


class _ABF(nn.Module):
    """Attention-based fusion of ReviewKD: 1x1 conv+BN to ``mid``, optional fusion with the residual
    from the deeper level through two sigmoid attention maps, then 3x3 conv+BN to ``out``."""

    def __init__(self, c_in: int, mid: int, c_out: int, fuse: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid))
        self.conv2 = nn.Sequential(
            nn.Conv2d(mid, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.att = nn.Sequential(nn.Conv2d(2 * mid, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: Tensor, residual: Tensor | None, out_size) -> tuple[Tensor, Tensor]:
        x = self.conv1(x)
        if self.att is not None and residual is not None:
            residual = F.interpolate(residual, x.shape[2:], mode="nearest")
            z = self.att(torch.cat([x, residual], dim=1))
            x = x * z[:, :1] + residual * z[:, 1:2]
        if tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, tuple(out_size), mode="nearest")
        return self.conv2(x), x


def _hcl_layer(fs: Tensor, ft: Tensor) -> Tensor:
    loss = F.mse_loss(fs, ft)
    weight, total = 1.0, 1.0
    diff = pooled = None
    exact = False  # ``pooled`` averages equal, non-overlapping windows of ``diff``
    h, w = fs.shape[2:]
    for level in (4, 2, 1):
        if level >= h:
            continue
        # pooling is linear: mse(pool(fs), pool(ft)) = mean(pool(fs - ft)^2); and an even pooling
        # of an even pooling is the even pooling of the original, so coarser levels reuse ``pooled``
        if exact and pooled.shape[2] % level == 0 and pooled.shape[3] % level == 0:
            pooled = F.adaptive_avg_pool2d(pooled, (level, level))
        else:
            diff = fs - ft if diff is None else diff
            pooled = F.adaptive_avg_pool2d(diff, (level, level))
            exact = h % level == 0 and w % level == 0
        weight /= 2.0
        loss = loss + weight * pooled.square().mean()
        total += weight
    return loss / total


@register("reviewkd_hcl", paper="chen2021distilling", family="feature", evidence="reference")
class ReviewKDHCL(DistillationLoss):
    r"""Knowledge review with the hierarchical context loss ("Distilling Knowledge via Knowledge
    Review", Chen et al., CVPR 2021; catalogue id ``chen2021distilling``).

    For each layer, the MSE of the maps plus the MSEs of their adaptive-average-pooled versions at
    4x4, 2x2, 1x1 (only the levels smaller than the map), with halving weights:

    .. math::
        \mathcal{L} = w\sum_l \frac{\mathrm{mse}(F^s_l,F^t_l) + \sum_{k} 2^{-k}\,
        \mathrm{mse}(P_{(k)}F^s_l, P_{(k)}F^t_l)}{1+\sum_k 2^{-k}}

    Args:
        student_channels, teacher_channels: sequences (shallow to deep); when given the loss owns
            the review path: one attention-based fusion (ABF) module per level, from the deepest
            level up, each fusing the student feature with the residual of the level below (1x1
            conv+BN, sigmoid attention, 3x3 conv+BN; Kaiming-uniform ``a=1`` init, as the official
            code), and producing the teacher's channels at the teacher's spatial size. ``None``
            (default): the student features are already fused.
        mid_channels: width of the ABF modules (default ``min(512, C_s of the deepest level)``).
        loss_weight: ``w`` (official ``kd_loss_weight``, 1 on CIFAR).

    Shapes: lists of ``(B, C, H, W)``; equal shapes per layer after fusion. Returns a scalar.

    Checked against dvlab-research/ReviewKD ``CIFAR-100/model/reviewkd.py`` (``hcl``), identical to
    mdistiller ``hcl_loss``. The linear warm-up factor of the official training is not included.
    """

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        mid_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = _layer_channels(student_channels, teacher_channels)
        self.abfs = None
        if pairs is not None:
            mid = mid_channels or min(512, pairs[-1][0])
            n = len(pairs)
            self.abfs = nn.ModuleList(
                _ABF(s, mid, t, fuse=i < n - 1) for i, (s, t) in enumerate(pairs)
            )

    def review(self, feats_student: list[Tensor], out_sizes) -> list[Tensor]:
        """Run the review path (deepest level first) and return outputs in shallow-to-deep order."""
        outs, residual = [], None
        for i in reversed(range(len(feats_student))):
            out, residual = self.abfs[i](feats_student[i], residual, out_sizes[i])
            outs.append(out)
        return outs[::-1]

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        _check_layers(feats_student, feats_teacher)
        if self.abfs is not None:
            if len(self.abfs) != len(feats_student):
                raise ValueError(f"{len(self.abfs)} review modules for {len(feats_student)} layers")
            feats_student = self.review(feats_student, [t.shape[2:] for t in feats_teacher])
        total = 0.0
        for fs, ft in zip(feats_student, feats_teacher, strict=True):
            check_same_shape(fs, ft, "feature")
            total = total + _hcl_layer(fs, ft.detach())
        return self.loss_weight * total

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _layer_example(batch, dtype, generator, large, layers=3)


# --------------------------------------------------------------------------------------------------
# Channel-wise distillation


@register("cwd", paper="shu2021channel", family="feature", evidence="reference")
class CWD(DistillationLoss):
    r"""Channel-wise distillation ("Channel-wise Knowledge Distillation for Dense Prediction", Shu
    et al., ICCV 2021; catalogue id ``shu2021channel``).

    With ``norm_type="channel"`` each channel is turned into a distribution over its positions,

    .. math::
        \phi(y_c) = \mathrm{softmax}_{i}(y_{c,i}/T),\qquad
        \mathcal{L} = w\,\frac{T^2}{N C}\sum_{n,c}\sum_i \phi(y^T_{c})_i
        \log\frac{\phi(y^T_c)_i}{\phi(y^S_c)_i}

    Args:
        norm_type: ``"channel"`` (softmax over positions, divide by ``N C``), ``"spatial"`` (softmax
            over channels at each position, divide by ``N H W``) or ``"channel_mean"`` (per-channel
            spatial mean, no softmax, divide by ``N C``). Default ``"channel"``.
        divergence: ``"kl"`` (summed KL, teacher as target) or ``"mse"`` (summed squared error, with
            the temperature forced to 1 as in the official code). Default ``"kl"``.
        temperature: ``T`` (default 4), used with ``"kl"`` only.
        loss_weight: ``w`` = :math:`\lambda` (default 1; README: 3).

    Shapes: ``feat_student``, ``feat_teacher`` ``(N, C, H, W)`` of equal shape (logit maps or
    already aligned features); returns a scalar.

    Checked against irfanICMLL/TorchDistiller ``SemSeg-distill/utils/criterion.py``
    (``CriterionCWD``; cross-checked with winycg/CIRKD ``losses/cwd.py``). The official
    ``norm_type="none"`` branch reads only the first sample of the batch, a bug not reproduced (the
    option is rejected). ``channel_mean`` with ``kl`` takes the log of the raw means, as the
    official code (undefined for negative means).
    """

    _NORMS = ("channel", "spatial", "channel_mean")

    def __init__(
        self,
        norm_type: str = "channel",
        divergence: str = "kl",
        temperature: float = 4.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if norm_type not in self._NORMS:
            raise ValueError(f"norm_type must be one of {self._NORMS}, got {norm_type!r}")
        if divergence not in ("kl", "mse"):
            raise ValueError(f"divergence must be 'kl' or 'mse', got {divergence!r}")
        self.norm_type = norm_type
        self.divergence = divergence
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        check_same_shape(feat_student, feat_teacher, "feature")
        n, c, h, w = feat_student.shape
        t = self.temperature if self.divergence == "kl" else 1.0
        s = feat_student / t
        tt = feat_teacher.detach() / t
        kl = self.divergence == "kl"
        if self.norm_type == "channel":
            dim, denom = -1, n * c
            s, tt = s.flatten(2), tt.flatten(2)
        elif self.norm_type == "spatial":
            dim, denom = 1, n * h * w
        else:
            dim, denom = None, n * c
            s, tt = s.flatten(2).mean(-1), tt.flatten(2).mean(-1)
        if dim is not None:
            p_t = tt.softmax(dim)
            s = s.log_softmax(dim) if kl else s.softmax(dim)
        else:
            p_t = tt
            s = s.log() if kl else s
        criterion = F.kl_div if kl else F.mse_loss
        loss = criterion(s, p_t, reduction="sum")
        return self.loss_weight * loss / denom * (t * t)


# --------------------------------------------------------------------------------------------------
# Masked generative distillation


@register("mgd", paper="yang2022masked", family="feature", evidence="reference")
class MGD(DistillationLoss):
    r"""Masked generative distillation ("Masked Generative Distillation", Yang et al., ECCV 2022;
    catalogue id ``yang2022masked``).

    The aligned student feature is randomly masked and a small generator must rebuild the teacher's
    full feature from it:

    .. math:: \mathcal{L} = \frac{w}{N}\sum \big(G(f_{align}(S)\odot M) - T\big)^2

    Args:
        student_channels, teacher_channels: when ``teacher_channels`` is given the loss owns the
            generation block ``G`` (3x3 conv, ReLU, 3x3 conv on ``C_t`` channels) and, when
            ``student_channels`` differs from it, the 1x1 ``align`` conv (with bias); PyTorch
            default init, as the official ``MGDLoss``. ``None`` (default): ``feat_student`` is
            already the generated feature, no mask and no module are applied.
        lambda_mgd: masking ratio :math:`\lambda` (default 0.15, the classification setting;
            detection/segmentation use 0.65/0.75 with the spatial mask).
        mask_type: ``"channel"`` (mask ``(N, C, 1, 1)``, classification) or ``"spatial"``
            (``(N, 1, H, W)``, detection/segmentation). Default ``"channel"``.
        seed: seeds a private ``torch.Generator`` for the masks (``None``: the global RNG). Masks
            are drawn only in training mode; in eval mode the generator sees the unmasked feature,
            so the value is deterministic.
        loss_weight: ``w`` = :math:`\alpha_{mgd}` (default 1; official 7e-5 for classification,
            2e-5 for detection/segmentation).

    Shapes: ``feat_student`` ``(N, C_s, H, W)``, ``feat_teacher`` ``(N, C_t, H, W)`` (equal without
    modules); returns a scalar.

    Checked against yzd-v/MGD ``cls/mmcls/distillation/losses/mgd.py`` (``MGDLoss``: summed squared
    error divided by ``N``). The mask keeps an element with probability ``1 - lambda_mgd`` (0/1
    values, no rescaling), as the official code.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        lambda_mgd: float = 0.15,
        mask_type: str = "channel",
        seed: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if mask_type not in ("channel", "spatial"):
            raise ValueError(f"mask_type must be 'channel' or 'spatial', got {mask_type!r}")
        self.lambda_mgd = lambda_mgd
        self.mask_type = mask_type
        self.loss_weight = loss_weight
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.align = self.generation = None
        if teacher_channels is not None:
            if student_channels is not None and student_channels != teacher_channels:
                self.align = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
            self.generation = nn.Sequential(
                nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1),
            )

    def _mask(self, feat: Tensor) -> Tensor:
        n, c, h, w = feat.shape
        shape = (n, c, 1, 1) if self.mask_type == "channel" else (n, 1, h, w)
        u = torch.rand(shape, generator=self._generator)
        return (u >= self.lambda_mgd).to(device=feat.device, dtype=feat.dtype)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_batch(feat_student, feat_teacher)
        if self.align is not None:
            feat_student = self.align(feat_student)
        if self.generation is not None:
            if self.training:
                feat_student = feat_student * self._mask(feat_student)
            feat_student = self.generation(feat_student)
        check_same_shape(feat_student, feat_teacher, "feature")
        sq = F.mse_loss(feat_student, feat_teacher.detach(), reduction="sum")
        return self.loss_weight * sq / feat_student.shape[0]


# --------------------------------------------------------------------------------------------------
# NORM


@register("norm", paper="liu2023norm", family="feature", evidence="reference")
class NORM(DistillationLoss):
    r"""N-to-one representation matching ("NORM: Knowledge Distillation via N-to-One Representation
    Matching", Liu et al., ICLR 2023; catalogue id ``liu2023norm``).

    The student's feature is expanded to ``N`` times the teacher's channels; each of the ``N``
    consecutive channel groups must match the whole teacher feature:

    .. math:: \mathcal{L} = w\,\frac{1}{B C_t H W}\sum_{j=1}^{N}\big\lVert S^{(j)} - T\big\rVert_2^2

    (the official ``mse_loss(S, T.repeat(1, N, 1, 1)) * N``).

    Args:
        n_copies: ``N`` (official ``co_sponge``, default 4).
        student_channels, teacher_channels: when both are given the loss owns the expansion layer,
            1x1 conv (no bias) + BN from ``C_s`` to ``N C_t`` (the official ``layer31``; PyTorch
            default init). The official student also contracts the expanded feature back into the
            network (``layer32`` with a residual); that is architecture, not loss, and is left to
            the student. ``None`` (default): ``feat_student`` is already expanded.
        loss_weight: ``w`` (official ``beta * beta1``).

    Shapes: ``feat_student`` ``(B, N C_t, H, W)`` (raw ``(B, C_s, H, W)`` with the expansion),
    ``feat_teacher`` ``(B, C_t, kH, kW)``: a teacher ``k`` times larger spatially is max-pooled
    (kernel and stride ``k``) first. Returns a scalar.

    Checked against OSVAI/NORM ``helper/loops.py`` (CIFAR branch). The student input legitimately
    has ``N`` times the teacher's channels, so "student equals teacher" is undefined for the
    generic property test (``zero_at_match = False``); the loss is 0 when every group equals the
    teacher.
    """

    zero_at_match = False  # inputs of different shapes; zero when each of the N groups equals T

    def __init__(
        self,
        n_copies: int = 4,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.n_copies = n_copies
        self.loss_weight = loss_weight
        pairs = _layer_channels(student_channels, teacher_channels)
        self.expand = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            self.expand = nn.Sequential(
                nn.Conv2d(c_s, n_copies * c_t, 1, bias=False), nn.BatchNorm2d(n_copies * c_t)
            )

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_batch(feat_student, feat_teacher)
        if self.expand is not None:
            feat_student = self.expand(feat_student)
        feat_teacher = feat_teacher.detach()
        k = feat_teacher.shape[2] // feat_student.shape[2]
        if k > 1:
            feat_teacher = F.max_pool2d(feat_teacher, k, k)
        b, c, h, w = feat_teacher.shape
        n = self.n_copies
        if tuple(feat_student.shape) != (b, n * c, h, w):
            raise ValueError(
                f"student feature must have {n} x the teacher's channels at the teacher's size: "
                f"student {tuple(feat_student.shape)} vs teacher {tuple(feat_teacher.shape)}"
            )
        # each of the N groups against the teacher, broadcast without materialising the repeat
        target = feat_teacher.unsqueeze(1).expand(b, n, c, h, w)
        return self.loss_weight * F.mse_loss(feat_student.view(b, n, c, h, w), target) * n

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        b, c, h = (64, 256, 16) if large else (batch, 4, 4)
        return {
            "feat_student": torch.randn(b, 4 * c, h, h, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(b, c, h, h, generator=generator, dtype=dtype),
        }


# --------------------------------------------------------------------------------------------------
# AttnFD


class _CBAM(nn.Module):
    """Convolutional block attention (channel gate, then spatial gate). ``learnable=False`` is the
    parameter-free teacher variant of the AttnFD code: identity MLP and a plain sum of the max- and
    mean-pooled channel maps instead of the 7x7 conv."""

    def __init__(self, channels: int, reduction: int = 16, learnable: bool = True):
        super().__init__()
        self.mlp = self.spatial = None
        if learnable:
            hidden = max(1, channels // reduction)
            self.mlp = nn.Sequential(
                nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
            )
            self.spatial = nn.Sequential(
                nn.Conv2d(2, 1, 7, padding=3, bias=False), nn.BatchNorm2d(1, momentum=0.01)
            )

    def forward(self, x: Tensor) -> Tensor:
        avg = F.adaptive_avg_pool2d(x, 1)
        mx = F.adaptive_max_pool2d(x, 1)
        if self.mlp is not None:
            gate = (self.mlp(avg) + self.mlp(mx))[:, :, None, None]
        else:
            gate = avg + mx
        x = x * torch.sigmoid(gate)
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        spatial = self.spatial(pooled) if self.spatial is not None else pooled.sum(1, keepdim=True)
        return x * torch.sigmoid(spatial)


@register("attnfd", paper="mansourian2026attention", family="feature", evidence="reference")
class AttnFD(DistillationLoss):
    r"""Attention-guided feature distillation, AttnFD ("Attention as Geometric Transformation:
    Revisiting Feature Distillation for Semantic Segmentation", Mansourian et al., WACV 2026
    workshops; first released as "Attention-guided Feature Distillation for Semantic Segmentation",
    arXiv 2403.05451; catalogue id ``mansourian2026attention``).

    CBAM-refined features of both networks, each normalised by its Frobenius norm over the whole
    batch tensor:

    .. math::
        \mathcal{L} = \frac{w}{B}\sum_l \Big\lVert \frac{r(A^s_l)}{\lVert r(A^s_l)\rVert_F}
        - \frac{A^t_l}{\lVert A^t_l\rVert_F}\Big\rVert_F^2

    Args:
        student_channels, teacher_channels: sequences (one per layer); when given the loss owns, per
            layer, a learnable CBAM on the raw student feature (MLP reduction 16, at least 1 hidden
            unit; 7x7 spatial conv + BN) followed by the connector ``r`` (1x1 conv, no bias, + BN,
            He-normal init), and applies the parameter-free teacher CBAM of the official code to the
            raw teacher feature. ``None`` (default): both inputs are already refined (and
            connected).
        reduction: CBAM channel reduction (default 16).
        loss_weight: ``w`` = ``attn_lambda`` (default 1; the official default is 2).

    Shapes: lists of ``(B, C, H, W)``, equal shapes per layer after the modules; returns a scalar.

    Checked against AmirMansurian/AttnFD ``distiller.py`` (``Distiller.forward``) with ``cbam.py``.
    The whole-batch norm follows the code (the paper's text does not say per sample).
    """

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        reduction: int = 16,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = _layer_channels(student_channels, teacher_channels)
        self.student_cbams = self.teacher_cbams = self.connectors = None
        if pairs is not None:
            self.student_cbams = nn.ModuleList(_CBAM(s, reduction) for s, _ in pairs)
            self.teacher_cbams = nn.ModuleList(_CBAM(t, learnable=False) for _, t in pairs)
            self.connectors = nn.ModuleList(_conv_bn_connector(s, t) for s, t in pairs)

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        _check_layers(feats_student, feats_teacher)
        feats_teacher = [t.detach() for t in feats_teacher]
        if self.connectors is not None:
            if len(self.connectors) != len(feats_student):
                raise ValueError(f"{len(self.connectors)} connectors, {len(feats_student)} layers")
            feats_student = [
                r(a(f))
                for r, a, f in zip(self.connectors, self.student_cbams, feats_student, strict=True)
            ]
            feats_teacher = [a(f) for a, f in zip(self.teacher_cbams, feats_teacher, strict=True)]
        total = 0.0
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_shape(s, t, "feature")
            total = total + (s / s.norm() - t / t.norm()).pow(2).sum() / s.shape[0]
        return self.loss_weight * total

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return _layer_example(batch, dtype, generator, large, layers=2)


# --------------------------------------------------------------------------------------------------
# SRD


@register("srd", paper="miles2024understanding", family="logit", evidence="reference")
class SRD(DistillationLoss):
    r"""Simple recipe distillation, representation term ("Understanding the Role of the Projector in
    Knowledge Distillation", Miles & Mikolajczyk, AAAI 2024; catalogue id
    ``miles2024understanding``).

    Both embeddings are batch-normalised without affine parameters (batch statistics, biased
    variance, :math:`\epsilon = 10^{-4}`) and compared with a log of the summed fourth powers:

    .. math:: \mathcal{L} = 2\,w\,\log \sum_{b,d}\big|\mathrm{BN}(P(z^s))_{bd} -
              \mathrm{BN}(z^t)_{bd}\big|^4

    Args:
        student_channels, teacher_channels: embedding widths; when given the loss owns the projector
            ``P``, a linear layer ``C_s -> C_t`` with bias (PyTorch default init), as the official
            ``embed``. ``None`` (default): ``feat_student`` is already projected.
        eps: BN epsilon (default 1e-4, official).
        loss_weight: ``w`` (default 1).

    Shapes: ``feat_student`` ``(B, C_s)`` and ``feat_teacher`` ``(B, C_t)`` pooled embeddings (maps
    ``(B, C, H, W)`` are averaged over positions first, as the official forward does); ``B > 1``.
    Returns a scalar.

    Checked against roymiles/Simple-Recipe-Distillation ``imagenet/torchdistill/losses/single.py``
    (``OurDistillationLoss.forward_loss``, times 2 as in its ``forward``). The KD term on logits of
    the same forward is the separate ``kd`` loss (T = 1). The official BN modules would switch to
    running statistics in eval mode; batch statistics are always used here, so the value is a
    function of the inputs only. The DeiT variant of the same repository (cross-correlation form) is
    not reproduced. The minimum is :math:`-\infty` at a perfect match (``zero_at_match = False``).
    """

    zero_at_match = False  # log(0) = -inf when the normalised embeddings coincide

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        eps: float = 1e-4,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight
        pairs = _layer_channels(student_channels, teacher_channels)
        self.projector = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            self.projector = nn.Linear(c_s, c_t)

    def _bn(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, None, None, training=True, eps=self.eps)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_batch(feat_student, feat_teacher)
        if feat_student.dim() > 2:
            feat_student = feat_student.flatten(2).mean(-1)
            feat_teacher = feat_teacher.flatten(2).mean(-1)
        if self.projector is not None:
            feat_student = self.projector(feat_student)
        check_same_shape(feat_student, feat_teacher, "embedding")
        diff = self._bn(feat_student) - self._bn(feat_teacher.detach())
        return self.loss_weight * 2.0 * torch.log(diff.abs().pow(4).sum())

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        b, d = (256, 512) if large else (batch, 16)
        return {
            "feat_student": torch.randn(b, d, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(b, d, generator=generator, dtype=dtype),
        }
