"""Feature losses built on a learned or method-specific module, beyond direct feature matching."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses.base import (
    DistillationLoss,
    check_same_length,
    check_same_shape,
    feature_example,
    logits_example,
    pool_to_smaller,
)
from kdsurvey.losses.registry import register

# --------------------------------------------------------------------------------------------------
# shared helpers


def _check_lead(student: Tensor, teacher: Tensor, dims: int = 1, what: str = "feature") -> None:
    """Raise ``ValueError`` naming both shapes when the first ``dims`` sizes (or ranks) differ."""
    if student.dim() != teacher.dim() or student.shape[:dims] != teacher.shape[:dims]:
        raise ValueError(
            f"{what} shapes do not match: student {tuple(student.shape)} vs teacher "
            f"{tuple(teacher.shape)}"
        )


def _pairs(student_channels, teacher_channels) -> list[tuple[int, int]] | None:
    """(student, teacher) channel pairs from ints or lists; ``None`` when neither is given."""
    if student_channels is None and teacher_channels is None:
        return None
    if student_channels is None or teacher_channels is None:
        raise ValueError("give both student_channels and teacher_channels, or neither")
    s = [student_channels] if isinstance(student_channels, int) else list(student_channels)
    t = [teacher_channels] if isinstance(teacher_channels, int) else list(teacher_channels)
    if len(s) != len(t) or not s:
        raise ValueError(f"student_channels {s} and teacher_channels {t} must pair up")
    return list(zip(s, t, strict=True))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, bias: bool = False) -> nn.Sequential:
    """``kernel`` x ``kernel`` conv (same padding) + BatchNorm + ReLU, PyTorch default init."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def _apply(module: nn.Module | None, x: Tensor) -> Tensor:
    return x if module is None else module(x)


def _mse_per_sample(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error over every dimension but the first: shape ``(B,)``."""
    return F.mse_loss(a, b, reduction="none").flatten(1).mean(1)


def _kl_rows(logits_student: Tensor, logits_teacher: Tensor, temperature: float) -> Tensor:
    """``KL(softmax(t/T) || softmax(s/T))`` along dim 1, one value per remaining position."""
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    log_p_t = F.log_softmax(logits_teacher / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)


# --------------------------------------------------------------------------------------------------
# Knowledge adaptation (KA)


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


@register("ka", paper="he2019knowledge", family="feature", evidence="paper")
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
        student_channels, teacher_channels: when both are given the loss owns the autoencoder
            (``teacher_channels`` -> ``latent_channels``) and the two student adapters ``C_f``,
            ``C_a`` (3x3 conv, stride 1, BN, ReLU, as the paper describes ``C_f``); PyTorch default
            init. ``None`` (default): ``feat_student`` is the adapted student feature (used for both
            terms) and ``feat_teacher`` the already translated :math:`E(\Phi_t)`.
        latent_channels: latent width of the autoencoder (default ``teacher_channels // 2``).
        adapt_weight: :math:`\beta` (default 50, paper).
        affinity_weight: :math:`\gamma` (default 1, paper).
        p: norm of the difference (default 1); q: norm that normalises each vector (default 2).
            The paper only says p and q are different norms; p=1, q=2 follows torchdistill.
        sparsity: :math:`\alpha` of the autoencoder's L1 term (default 1e-7, paper).
        loss_weight: ``w`` (default 1).

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
        pairs = _pairs(student_channels, teacher_channels)
        if pairs is not None:
            ((c_s, c_t),) = pairs
            latent = latent_channels or max(1, c_t // 2)
            self.translator = _KATranslator(c_t, latent)
            self.feature_adapter = _conv_bn_relu(c_s, latent, kernel=3)
            self.affinity_adapter = _conv_bn_relu(c_s, latent, kernel=3)

    def reconstruction_loss(self, feat_teacher: Tensor) -> Tensor:
        """Stage-1 objective of the autoencoder (mean squared reconstruction + L1 sparsity)."""
        if self.translator is None:
            raise RuntimeError("KA was built without channel sizes, so it has no autoencoder")
        hidden = self.translator.encoder(feat_teacher.detach())
        rec = self.translator.decoder(hidden)
        return F.mse_loss(rec, feat_teacher.detach()) + self.sparsity * hidden.abs().sum()

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_lead(feat_student, feat_teacher)
        target = feat_teacher.detach()
        if self.translator is not None:
            with torch.no_grad():
                target = self.translator.encoder(target)
        s_f = _apply(self.feature_adapter, feat_student)
        s_a = _apply(self.affinity_adapter, feat_student)
        check_same_shape(s_f, target, "adapted student and translated teacher feature")
        diff = F.normalize(s_f, p=self.q, dim=1) - F.normalize(target, p=self.q, dim=1)
        adapt = torch.linalg.vector_norm(diff, ord=self.p, dim=1).mean()
        aff_diff = _position_affinity(s_a) - _position_affinity(target)
        affinity = torch.linalg.vector_norm(aff_diff, dim=2).mean()
        return self.loss_weight * (self.adapt_weight * adapt + self.affinity_weight * affinity)


# --------------------------------------------------------------------------------------------------
# Channel distillation (CD)


@register("cd", paper="zhou2020channel", family="feature", evidence="reference")
class CD(DistillationLoss):
    r"""Channel distillation with guided KD and early-decay teacher ("Channel Distillation:
    Channel-Wise Attention for Knowledge Distillation", Zhou et al., arXiv 2020; catalogue id
    ``zhou2020channel``).

    Channel attention is the global average of each channel; the student's (connected) attention
    matches the teacher's on every stage, and KD is restricted to samples the teacher classifies
    correctly (GKD):

    .. math::
        \mathcal{L}_{CD} = \sum_{l}\frac{1}{BC}\sum_{b,c}\big(\bar s^l_{bc} - \bar t^l_{bc}\big)^2,
        \qquad
        \mathcal{L}_{GKD} = \frac{T^2}{|\mathcal{C}|}\sum_{b\in\mathcal{C}}
            \mathrm{KL}\big(\sigma(z^t_b/T)\,\|\,\sigma(z^s_b/T)\big)

    .. math::
        \mathcal{L} = w\,\big(\alpha\,\gamma^{k(e)}\,\mathcal{L}_{CD} +
            \beta\,[e > e_0]\,\mathcal{L}_{GKD}\big)

    with :math:`\mathcal{C}` the samples whose teacher argmax equals the label. Early decay teacher
    (EDT): :math:`k(e)` counts the decay milestones reached at epoch ``e``.

    Args:
        student_channels, teacher_channels: lists (one per stage); when given the loss owns the
            official connectors (1x1 conv without bias, BN, ReLU; PyTorch default init). ``None``
            (default): ``feats_student`` are already connected.
        cd_weight: :math:`\alpha` (default 6, official configs).
        kd_weight: :math:`\beta` (default 1, ImageNet; CIFAR-100 uses 0.1).
        temperature: ``T`` (default 1, official).
        decay_factor: :math:`\gamma` (default 0.9). decay_milestones: an int ``m`` gives
            :math:`k = \lfloor e/m\rfloor` (default 30, ImageNet); a sequence gives the number of
            milestones :math:`\le e` (CIFAR-100: ``(60, 160)``).
        kd_start_epoch: :math:`e_0`, GKD is off while ``epoch <= e_0`` (default 30; CIFAR 60).
        loss_weight: ``w`` (default 1).

    Forward: ``feats_student``/``feats_teacher`` lists of ``(B, C, H, W)`` (spatial sizes may
    differ, ``(B, C)`` must agree); optional ``logits_student``, ``logits_teacher`` ``(B, K)`` with
    ``target`` ``(B,)`` for GKD; optional ``epoch`` (``None``: no schedule, weights constant).

    Checked against zhouzaida/channel-distillation (``losses/cd_loss.py`` ``CDLoss``,
    ``losses/kd_loss.py`` ``KDLossv2``, ``utils/util.py`` ``adjust_loss_alpha`` with ``lrdv2``).
    When no sample is correctly classified the official GKD divides by zero; here it is 0.
    """

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        cd_weight: float = 6.0,
        kd_weight: float = 1.0,
        temperature: float = 1.0,
        decay_factor: float = 0.9,
        decay_milestones: int | Sequence[int] = 30,
        kd_start_epoch: int = 30,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.cd_weight, self.kd_weight, self.temperature = cd_weight, kd_weight, temperature
        self.decay_factor, self.decay_milestones = decay_factor, decay_milestones
        self.kd_start_epoch, self.loss_weight = kd_start_epoch, loss_weight
        pairs = _pairs(student_channels, teacher_channels)
        self.connectors = None
        if pairs is not None:
            self.connectors = nn.ModuleList(_conv_bn_relu(s, t) for s, t in pairs)

    def schedule(self, epoch: int | None) -> tuple[float, float]:
        """(CD factor, GKD factor) of the early-decay-teacher schedule at ``epoch``."""
        if epoch is None:
            return 1.0, 1.0
        m = self.decay_milestones
        k = epoch // m if isinstance(m, int) else sum(epoch >= x for x in m)
        return self.decay_factor**k, float(epoch > self.kd_start_epoch)

    def forward(
        self,
        feats_student: Sequence[Tensor],
        feats_teacher: Sequence[Tensor],
        logits_student: Tensor | None = None,
        logits_teacher: Tensor | None = None,
        target: Tensor | None = None,
        epoch: int | None = None,
    ) -> Tensor:
        check_same_length(feats_student, feats_teacher)
        if self.connectors is not None:
            check_same_length(feats_student, self.connectors)
            feats_student = [c(f) for c, f in zip(self.connectors, feats_student, strict=True)]
        cd = 0.0
        for s, t in zip(feats_student, feats_teacher, strict=True):
            _check_lead(s, t, dims=2)
            cd = cd + F.mse_loss(s.flatten(2).mean(2), t.detach().flatten(2).mean(2))
        cd_factor, kd_factor = self.schedule(epoch)
        loss = self.cd_weight * cd_factor * cd
        if logits_student is not None or logits_teacher is not None:
            if logits_student is None or logits_teacher is None or target is None:
                raise ValueError("GKD needs logits_student, logits_teacher and target together")
            check_same_shape(logits_student, logits_teacher, "logits")
            t = self.temperature
            correct = (logits_teacher.argmax(1) == target).to(logits_student.dtype)
            kl = _kl_rows(logits_student, logits_teacher.detach(), t)
            gkd = (kl * correct).sum() / correct.sum().clamp_min(1.0) * t * t
            loss = loss + self.kd_weight * kd_factor * gkd
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = feature_example(batch, dtype, generator, large, layers=2)
        n = out["feats_student"][0].shape[0]
        logits = logits_example(batch, dtype, generator, large, with_target=True)
        logits = {key: value[:n] for key, value in logits.items()}
        return {**out, **logits}


# --------------------------------------------------------------------------------------------------
# SemCKD


class _MLPEmbed(nn.Module):
    """Linear, ReLU, Linear, L2 normalisation (SemCKD's query/key embedding)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim_in, 2 * dim_out), nn.ReLU(), nn.Linear(2 * dim_out, dim_out)
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.net(x), dim=1)


def _aa_embed(c_in: int, c_out: int) -> nn.Sequential:
    """SemCKD's per-pair regressor: 1x1, 3x3, 1x1 convs (no bias) with BN/ReLU between."""
    mid = 2 * c_out
    return nn.Sequential(
        _conv_bn_relu(c_in, mid, 1),
        _conv_bn_relu(mid, mid, 3),
        nn.Conv2d(mid, c_out, 1, bias=False),
    )


@register("semckd", paper="chen2021cross", family="feature", evidence="reference")
class SemCKD(DistillationLoss):
    r"""Semantic calibration for cross-layer distillation ("Cross-Layer Distillation with Semantic
    Calibration", Chen et al., AAAI 2021; catalogue id ``chen2021cross``).

    Every student layer ``i`` is matched to every teacher layer ``j``, weighted by an attention
    computed per sample from the layers' batch similarity matrices:

    .. math::
        \alpha_{b,ij} = \mathrm{softmax}_j\big(q_i(G^s_i)_b^\top k_j(G^t_j)_b\big),\quad
        G_l = \mathrm{vec}(F_l)\,\mathrm{vec}(F_l)^\top \in \mathbb{R}^{B\times B}

    .. math::
        \mathcal{L} = \frac{w}{B\,S}\sum_{b}\sum_{i=1}^{S}\sum_{j=1}^{T}\alpha_{b,ij}\,
            \mathrm{MSE}\big(r_{ij}(F^s_{i,b}),\,F^t_{j,b}\big)

    where the larger of the two maps is average-pooled to the smaller one's size.

    Args:
        student_channels, teacher_channels: lists of channel counts; when given the loss owns one
            regressor ``r_ij`` per pair (official ``AAEmbed``: 1x1 conv to ``2 C_t``, BN, ReLU, 3x3
            conv, BN, ReLU, 1x1 conv to ``C_t``, no biases; PyTorch default init).
        batch_size: with channel lists, also build the learned query/key embeddings ``q_i``, ``k_j``
            (official ``MLPEmbed`` on rows of the ``B x B`` similarity: Linear to ``2B/f``, ReLU,
            Linear to ``B/f``, L2 norm). Their input width is the batch size, so every batch must
            have exactly ``batch_size`` samples (the official loop skips smaller ones).
        factor: ``f``, embedding reduction (default 4).
        loss_weight: ``w`` (default 1; official ``-b 400`` on CIFAR-100, 50 on ImageNet).

    ``None`` (default) for all: no regressor (student and teacher channels must agree) and the
    embeddings reduce to their parameter-free part, the L2-normalised similarity rows.

    Forward: ``feats_student`` (``S`` maps ``(B, C, H, W)``) and ``feats_teacher`` (``T`` maps,
    ``S != T`` allowed). Returns a scalar. Checked against DefangChen/SemCKD
    (``models/util.py`` ``SelfA``/``AAEmbed``/``MLPEmbed``, ``distiller_zoo/SemCKD.py``); the
    official code pools to square ``(h, h)`` maps, here the smaller map's ``(h, w)``.
    ``zero_at_match`` is False: cross-layer pairs keep a positive weight even when every student
    map equals its teacher counterpart. Batch order matters once the learned embeddings exist.
    """

    zero_at_match = False

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        batch_size: int | None = None,
        factor: int = 4,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight, self.batch_size = loss_weight, batch_size
        self.regressors = self.query = self.key = None
        if student_channels is not None or teacher_channels is not None:
            s, t = list(student_channels or []), list(teacher_channels or [])
            if not s or not t:
                raise ValueError("give both student_channels and teacher_channels, or neither")
            self.regressors = nn.ModuleList(_aa_embed(cs, ct) for cs in s for ct in t)
            self.n_student, self.n_teacher = len(s), len(t)
            if batch_size is not None:
                d = max(1, batch_size // factor)
                self.query = nn.ModuleList(_MLPEmbed(batch_size, d) for _ in s)
                self.key = nn.ModuleList(_MLPEmbed(batch_size, d) for _ in t)
        elif batch_size is not None:
            raise ValueError("batch_size (learned embeddings) needs the channel lists")

    @staticmethod
    def _embed(feats: Sequence[Tensor], embeds: nn.ModuleList | None) -> Tensor:
        out = []
        for i, f in enumerate(feats):
            flat = f.reshape(f.shape[0], -1)
            sim = flat @ flat.t()
            out.append(F.normalize(sim, dim=1) if embeds is None else embeds[i](sim))
        return torch.stack(out)

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        first = feats_teacher[0]
        for f in [*feats_student, *feats_teacher]:
            _check_lead(f, first)
        n_s, n_t, batch = len(feats_student), len(feats_teacher), first.shape[0]
        if self.regressors is not None and (n_s, n_t) != (self.n_student, self.n_teacher):
            raise ValueError(
                f"expected {self.n_student} student and {self.n_teacher} teacher "
                f"layers, got {n_s} and {n_t}"
            )
        if self.query is not None and batch != self.batch_size:
            raise ValueError(f"learned embeddings need batches of {self.batch_size}, got {batch}")
        feats_teacher = [f.detach() for f in feats_teacher]
        q = self._embed(feats_student, self.query)  # (S, B, d)
        k = self._embed(feats_teacher, self.key)  # (T, B, d)
        attention = torch.einsum("sbd,tbd->bst", q, k).softmax(-1)
        per_pair = []
        for i, fs in enumerate(feats_student):
            for j, ft in enumerate(feats_teacher):
                fs_ij, ft = pool_to_smaller(fs, ft)
                if self.regressors is not None:
                    fs_ij = self.regressors[i * n_t + j](fs_ij)
                check_same_shape(fs_ij, ft, f"student layer {i} / teacher layer {j}")
                per_pair.append(_mse_per_sample(fs_ij, ft))
        ind = torch.stack(per_pair, 1).view(batch, n_s, n_t)
        return self.loss_weight * (attention * ind).sum() / (batch * n_s)


# --------------------------------------------------------------------------------------------------
# ALP-KD


@register("alp_kd", paper="passban2021alp", family="feature", evidence="paper")
class ALPKD(DistillationLoss):
    r"""Attention-based layer projection ("ALP-KD: Attention-Based Layer Projection for Knowledge
    Distillation", Passban et al., AAAI 2021; catalogue id ``passban2021alp``).

    Each student layer attends over all teacher layers and matches the attention-weighted mix:

    .. math::
        \alpha_{ij} = \frac{\exp(h^i_S\cdot h^j_T)}{\sum_k \exp(h^i_S\cdot h^k_T)},\qquad
        \mathcal{L} = w\sum_{i=1}^{m}\mathrm{MSE}\Big(h^i_S,\ \sum_{j=1}^{n}\alpha_{ij}\,h^j_T\Big)

    computed per input (and per token when hidden states carry a token axis).

    Args:
        student_channels, teacher_channels: hidden sizes; when both are given and differ the loss
            owns one ``Linear`` (PyTorch default init) applied to every student layer before the
            attention. The paper's students share the teacher's width and need none (default).
        loss_weight: ``w`` (the paper's :math:`\lambda`; default 1).

    Shapes: ``feats_student`` (``m`` tensors) and ``feats_teacher`` (``n`` tensors, ``m != n``
    allowed) of shape ``(B, D)`` (e.g. the ``[CLS]`` vectors the paper matches) or ``(B, T, D)``
    (every token attends separately). Returns a scalar.

    No official code; written from the paper (dot-product attention without scaling, MSE averaged
    over batch and hidden units, summed over student layers). ``zero_at_match`` is False: the target
    is a convex mix of all teacher layers, so it differs from the matching teacher layer.
    """

    zero_at_match = False

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = _pairs(student_channels, teacher_channels)
        self.projection = None
        if pairs is not None and pairs[0][0] != pairs[0][1]:
            self.projection = nn.Linear(*pairs[0])

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        first = feats_teacher[0]
        for h in feats_teacher:
            check_same_shape(h, first, "teacher layers")
        for h in feats_student:
            _check_lead(h, first, dims=first.dim() - 1, what="hidden state")
        hs = torch.stack([_apply(self.projection, h) for h in feats_student])  # (m, B, [T], D)
        ht = torch.stack([h.detach() for h in feats_teacher])  # (n, B, [T], D)
        check_same_shape(hs[0], ht[0], "projected student and teacher hidden state")
        attention = torch.einsum("m...d,n...d->...mn", hs, ht).softmax(-1)
        mixed = torch.einsum("...mn,n...d->m...d", attention, ht)
        return self.loss_weight * (hs - mixed).pow(2).flatten(1).mean(1).sum()

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, tokens, dim = (64, 16, 256) if large else (batch, 3, 8)

        def rand():
            return torch.randn(n, tokens, dim, generator=generator, dtype=dtype) * 0.5

        return {
            "feats_student": [rand() for _ in range(2)],
            "feats_teacher": [rand() for _ in range(3)],
        }


# --------------------------------------------------------------------------------------------------
# Channel-wise transformation


@register("channel_transform", paper="liu2023simple", family="feature", evidence="paper")
class ChannelTransform(DistillationLoss):
    r"""Feature distillation through a learnable channel-wise transformation ("A Simple and Generic
    Framework for Feature Distillation via Channel-wise Transformation", Liu et al., ICCV 2023
    Workshops; catalogue id ``liu2023simple``).

    A two-layer MLP over channels (1x1 convs) transforms only the student's feature, which then
    matches the untouched teacher feature with a plain L2 loss:

    .. math::
        \mathrm{MLP}(F) = W_2\,\sigma(W_1 F),\qquad
        \mathcal{L} = \frac{\alpha}{B}\sum\big(\mathrm{MLP}(F^s) - F^t\big)^2

    Args:
        student_channels, teacher_channels: when given the loss owns the MLP (1x1 conv
            ``C_s -> hidden``, ReLU, 1x1 conv ``hidden -> C_t``, with biases; PyTorch default init).
            ``None`` (default): ``feat_student`` is already transformed.
        hidden_channels: MLP width (default ``teacher_channels``).
        loss_weight: :math:`\alpha`, the method's single hyperparameter (default 1; tuned per task).

    Shapes: ``feat_student`` ``(B, C_s, H, W)``, ``feat_teacher`` ``(B, C_t, H, W)``. Returns a
    scalar. No code was released; written from the paper. The hidden width and the reduction
    (summed squared error divided by the batch size, as MGD, whose setting the paper follows) are
    inferred.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        hidden_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = _pairs(student_channels, teacher_channels)
        self.transform = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            hidden = hidden_channels or c_t
            self.transform = nn.Sequential(
                nn.Conv2d(c_s, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, c_t, 1)
            )

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_lead(feat_student, feat_teacher)
        feat_student = _apply(self.transform, feat_student)
        check_same_shape(feat_student, feat_teacher, "transformed student and teacher feature")
        diff = feat_student - feat_teacher.detach()
        return self.loss_weight * diff.pow(2).sum() / feat_student.shape[0]


# --------------------------------------------------------------------------------------------------
# DiffKD


class _Bottleneck(nn.Module):
    """Residual 1x1-3x3-1x1 block with BN (DiffKD's denoiser and noise-adapter block)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        mid = max(1, channels // reduction)
        self.block = nn.Sequential(
            _conv_bn_relu(channels, mid, 1, bias=True),
            _conv_bn_relu(mid, mid, 3, bias=True),
            nn.Conv2d(mid, channels, 1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x) + x


def _expand_mlp(channels: int, mult: int, final_bn: bool) -> list[nn.Module]:
    """1x1 conv to ``mult * C``, BN, ReLU, 1x1 conv back to ``C`` (+ BN): DiffKD's 1x1 blocks."""
    wide = mult * channels
    layers = [
        nn.Conv2d(channels, wide, 1),
        nn.BatchNorm2d(wide),
        nn.ReLU(),
        nn.Conv2d(wide, channels, 1),
    ]
    return [*layers, nn.BatchNorm2d(channels)] if final_bn else layers


class _Denoiser(nn.Module):
    """Noise predictor: time embedding added to the input, then two bottlenecks (3x3 variant) or
    a 1x1 MLP (``kernel_size=1``, for vector features)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.time_embedding = nn.Embedding(1280, channels)
        if kernel_size == 3:
            self.pred = nn.Sequential(
                _Bottleneck(channels),
                _Bottleneck(channels),
                nn.Conv2d(channels, channels, 1),
                nn.BatchNorm2d(channels),
            )
        else:
            self.pred = nn.Sequential(
                *_expand_mlp(channels, 4, final_bn=True), *_expand_mlp(channels, 4, final_bn=False)
            )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time_embedding(t)
        return self.pred(x + emb.view(-1, x.shape[1], 1, 1))


class _NoiseAdapter(nn.Module):
    """Predicts, per sample, the weight ``gamma`` of the student feature in its noisy start."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size == 3:
            self.feat = nn.Sequential(_Bottleneck(channels, reduction=8), nn.AdaptiveAvgPool2d(1))
        else:
            self.feat = nn.Sequential(*_expand_mlp(channels, 2, final_bn=True))
        self.pred = nn.Linear(channels, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pred(self.feat(x).flatten(1)).softmax(1)[:, 0]


@register("diffkd", paper="huang2023knowledge", family="feature", evidence="compared")
class DiffKD(DistillationLoss):
    r"""Knowledge diffusion for distillation ("Knowledge Diffusion for Distillation", Huang et al.,
    NeurIPS 2023; catalogue id ``huang2023knowledge``).

    A small diffusion model is trained to denoise teacher features; the student feature, treated as
    a noisy teacher feature, is denoised by it before being matched to the teacher:

    .. math::
        \mathcal{L}_{diff} = \mathbb{E}_{t,\epsilon}\big\lVert \epsilon_\theta(\sqrt{\bar a_t}F^t +
            \sqrt{1-\bar a_t}\,\epsilon,\ t) - \epsilon\big\rVert^2,\qquad
        \hat F^s = \mathrm{proj}\big(\mathrm{DDIM}_\theta(\gamma F^s + (1-\gamma)\epsilon)\big)

    .. math::
        \mathcal{L} = w\,\big(\lambda_{kd}\,\mathrm{MSE}(\hat F^s, F^t) + \lambda_{diff}\,
            \mathcal{L}_{diff} + \lambda_{ae}\,\mathrm{MSE}(D(E(F^t)), F^t)\big)

    ``gamma`` comes from the noise adapter; the DDIM (eta 0, linear betas 1e-4..0.02 over
    ``num_train_timesteps``, float32 as official) runs the last ``inference_steps`` of a
    ``2 * inference_steps`` schedule; ``proj`` is a 1x1 conv + BN. With the autoencoder,
    :math:`F^t` is replaced by its (detached) latent :math:`E(F^t)`. For logits (``kernel_size=1``)
    the official code replaces the MSE by :math:`T^2\,\mathrm{KL}` (``temperature``).

    Args:
        student_channels, teacher_channels: when both are given the loss owns ``trans`` (1x1 conv
            student -> teacher/latent, as official). The denoiser, noise adapter and ``proj`` are
            built from ``teacher_channels``; when it is ``None`` (default) they are built lazily at
            the first call from the teacher input (pass the channels to give an optimizer the
            parameters up front). PyTorch default init everywhere.
        kernel_size: 3 (bottleneck denoiser, feature maps; default) or 1 (1x1 MLP, vectors).
        inference_steps: DDIM steps on the student feature (default 5).
        num_train_timesteps: diffusion length (default 1000).
        use_ae, ae_channels: linear autoencoder (1x1 conv + BN / 1x1 conv) on the teacher feature,
            latent width ``ae_channels`` (default ``teacher_channels // 2``). Default off, as the
            official constructor; the ImageNet configs turn it on for features with 1024 channels.
        temperature: ``None`` (default): MSE distillation (features); a number ``T``: KL on
            ``softmax(. / T)`` over channels, times :math:`T^2`, divided by ``B`` (official logits
            setting, ``T = 1``).
        kd_weight, diff_weight, ae_weight: :math:`\lambda_{kd}, \lambda_{diff}, \lambda_{ae}`
            (default 1 each, the official sum).
        seed: seeds a private ``torch.Generator`` for the noise and timesteps in training mode
            (``None``: the global RNG, as official). In eval mode a generator seeded with ``seed``
            (or 0) is re-created at every call, so the value is deterministic.
        loss_weight: ``w`` (default 1).

    Shapes: ``feat_student`` ``(B, C_s, H, W)`` or ``(B, C_s)``, ``feat_teacher`` likewise with
    ``C_t``. Returns a scalar. Checked against hunto/image_classification_sota
    ``lib/models/losses/diffkd/`` (``DiffKD``, ``diffkd_modules.py``, ``scheduling_ddim.py``) and
    ``lib/models/losses/kd_loss.py`` (how the three terms are summed), the code the DiffKD
    repository points to; with the global RNG seeded alike the values and gradients coincide
    (float64, weights copied). Bottleneck widths are ``max(1, C // r)``, so widths under 8 also
    work (the official blocks get 0 channels there).
    ``zero_at_match``/``batch_invariant`` are False: the denoised student and the diffusion loss
    are random and non-zero even when student and teacher features coincide.
    """

    zero_at_match = False
    batch_invariant = False

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        kernel_size: int = 3,
        inference_steps: int = 5,
        num_train_timesteps: int = 1000,
        use_ae: bool = False,
        ae_channels: int | None = None,
        temperature: float | None = None,
        kd_weight: float = 1.0,
        diff_weight: float = 1.0,
        ae_weight: float = 1.0,
        seed: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if kernel_size not in (1, 3):
            raise ValueError(f"kernel_size must be 1 or 3, got {kernel_size}")
        self.kernel_size, self.inference_steps = kernel_size, inference_steps
        self.num_train_timesteps, self.use_ae, self.ae_channels = (
            num_train_timesteps,
            use_ae,
            ae_channels,
        )
        self.kd_weight, self.diff_weight, self.ae_weight = kd_weight, diff_weight, ae_weight
        self.temperature, self.seed, self.loss_weight = temperature, seed, loss_weight
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None
        betas = torch.linspace(1e-4, 0.02, num_train_timesteps)  # float32, as official
        self._alphas_cumprod = torch.cumprod(1.0 - betas, 0)
        self.student_channels = student_channels
        self.trans = self.ae = self.model = self.noise_adapter = self.proj = None
        if teacher_channels is not None:
            self._build(teacher_channels)

    def _build(self, teacher_channels: int) -> None:
        c = teacher_channels
        if self.use_ae:
            latent = self.ae_channels or max(1, c // 2)
            self.ae = nn.ModuleDict(
                {
                    "encoder": nn.Sequential(nn.Conv2d(c, latent, 1), nn.BatchNorm2d(latent)),
                    "decoder": nn.Conv2d(latent, c, 1),
                }
            )
            c = latent
        if self.student_channels is not None:
            self.trans = nn.Conv2d(self.student_channels, c, 1)
        self.model = _Denoiser(c, self.kernel_size)
        self.noise_adapter = _NoiseAdapter(c, self.kernel_size)
        self.proj = nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c))

    @staticmethod
    def _randn(like: Tensor, generator, dtype: torch.dtype | None = None) -> Tensor:
        noise = torch.randn(like.shape, generator=generator, dtype=dtype or like.dtype)
        return noise.to(device=like.device, dtype=like.dtype)

    def _denoise(self, x: Tensor, acp: Tensor, generator) -> Tensor:
        gamma = self.noise_adapter(x).view(-1, 1, 1, 1)
        x = gamma * x + (1.0 - gamma) * self._randn(x, generator)
        ratio = self.num_train_timesteps // (2 * self.inference_steps)
        for step in reversed(range(self.inference_steps)):
            t = step * ratio
            a_t = acp[t]
            a_prev = acp[t - ratio] if t >= ratio else acp.new_tensor(1.0)
            eps = self.model(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return self.proj(x)

    def _diffusion_loss(self, target: Tensor, acp: Tensor, generator) -> Tensor:
        noise = self._randn(target, generator, torch.get_default_dtype())  # official draws it so
        t = torch.randint(0, self.num_train_timesteps, (target.shape[0],), generator=generator)
        t = t.to(target.device)
        a = acp[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * target + (1 - a).sqrt() * noise
        return F.mse_loss(self.model(noisy, t), noise)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_lead(feat_student, feat_teacher)
        if feat_student.dim() == 2:
            feat_student = feat_student[:, :, None, None]
            feat_teacher = feat_teacher[:, :, None, None]
        target = feat_teacher.detach()
        if self.model is None:
            self._build(target.shape[1])
            self.to(device=target.device, dtype=target.dtype)
        generator = self._generator
        if not self.training:
            generator = torch.Generator().manual_seed(self.seed or 0)
        acp = self._alphas_cumprod.to(device=target.device, dtype=target.dtype)
        rec_loss = target.new_zeros(())
        if self.ae is not None:
            hidden = self.ae["encoder"](target)
            rec_loss = F.mse_loss(self.ae["decoder"](hidden), target)
            target = hidden.detach()
        student = _apply(self.trans, feat_student)
        check_same_shape(student, target, "student and teacher (latent) feature")
        refined = self._denoise(student, acp, generator)
        if self.temperature is None:
            kd = F.mse_loss(refined, target)
        else:
            t = self.temperature
            kd = _kl_rows(refined, target, t).sum() / target.shape[0] * t * t
        diff = self._diffusion_loss(target, acp, generator)
        total = self.kd_weight * kd + self.diff_weight * diff + self.ae_weight * rec_loss
        return self.loss_weight * total


# --------------------------------------------------------------------------------------------------
# FAKD


@register("fakd", paper="yuan2024fakd", family="feature", evidence="paper")
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
        _check_lead(feat_student, logits_teacher)
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


# --------------------------------------------------------------------------------------------------
# Raw-feature (angular) distillation


@register("rawkd", paper="liu2024rethinking", family="feature", evidence="paper")
class RawKD(DistillationLoss):
    r"""Angular distillation of raw features ("Rethinking Knowledge Distillation with Raw Features
    for Semantic Segmentation", Liu et al., WACV 2024; catalogue id ``liu2024rethinking``).

    FitNets' squared error splits into a magnitude term and an angular term,
    :math:`\lVert s-t\rVert^2 = (\lVert s\rVert-\lVert t\rVert)^2 + 2\lVert s\rVert\lVert t\rVert
    (1-\cos\theta)`, whose weight depends on the feature magnitudes. The method keeps only the
    angular information, free of that magnitude weight, along the channel and spatial dimensions:

    .. math::
        \mathcal{L} = w\Big(\lambda_c\,\frac{1}{BHW}\sum_{b,p}\big(1-\cos(s_{b,:,p}, t_{b,:,p})\big)
            + \lambda_s\,\frac{1}{BC}\sum_{b,c}\big(1-\cos(s_{b,c,:}, t_{b,c,:})\big)\Big)

    Args:
        student_channels, teacher_channels: when given the loss owns a 1x1 conv (with bias, PyTorch
            default init) mapping the student to the teacher's channels. ``None`` (default): none.
        channel_weight: :math:`\lambda_c`, angle between per-pixel channel vectors (default 1).
        spatial_weight: :math:`\lambda_s`, angle between per-channel spatial maps (default 1).
        loss_weight: ``w`` (default 1; the paper reports robustness to this weight).

    Shapes: ``feat_student`` ``(B, C_s, H, W)``, ``feat_teacher`` ``(B, C_t, H, W)``. Returns a
    scalar. No code was released; written from the paper. Uncertain: the paper explores angular
    distillation along different dimensions and the combination kept by default here (both, equal
    weights) and the averaging are inferred; set either weight to 0 for a single dimension.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        channel_weight: float = 1.0,
        spatial_weight: float = 1.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.channel_weight, self.spatial_weight = channel_weight, spatial_weight
        self.loss_weight = loss_weight
        pairs = _pairs(student_channels, teacher_channels)
        self.connector = None if pairs is None else nn.Conv2d(*pairs[0], kernel_size=1)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        _check_lead(feat_student, feat_teacher)
        s = _apply(self.connector, feat_student)
        check_same_shape(s, feat_teacher, "feature")
        t = feat_teacher.detach()
        channel = 1 - F.cosine_similarity(s, t, dim=1).mean()
        spatial = 1 - F.cosine_similarity(s.flatten(2), t.flatten(2), dim=2).mean()
        return self.loss_weight * (self.channel_weight * channel + self.spatial_weight * spatial)


# --------------------------------------------------------------------------------------------------
# X-Ray distillation


@register("xray_kd", paper="gambashidze2024weak", family="logit", evidence="paper")
class XRayKD(DistillationLoss):
    r"""X-Ray distillation from an object-complete teacher ("Weak-to-Strong 3D Object Detection with
    X-Ray Distillation", Gambashidze et al., CVPR 2024; catalogue id ``gambashidze2024weak``).

    The teacher (same detector, trained on object-complete LiDAR frames) supervises the student,
    which sees ordinary frames, through its dense BEV head outputs and its BEV embeddings:

    .. math::
        \mathcal{L} = w\big(\lambda_{hm}\,\mathrm{MSE}(H^s, H^t) + \lambda_{box}\,
            \mathrm{MSE}(R^s, R^t) + \lambda_{emb}\,\mathrm{MSE}(a(E^s), E^t)\big)

    Args:
        heatmap_weight, box_weight, feature_weight: :math:`\lambda_{hm}, \lambda_{box},
            \lambda_{emb}` (default 1 each; the paper stresses default hyperparameters).
        student_channels, teacher_channels: when given the loss owns a 1x1 conv ``a`` (with bias,
            PyTorch default init) for the embeddings; ``None`` (default): none (the paper's student
            and teacher share the architecture).
        loss_weight: ``w`` (default 1).

    Forward: ``logits_student``/``logits_teacher`` ``(B, K, H, W)`` heatmap logits; optional
    ``boxes_student``/``boxes_teacher`` ``(B, R, H, W)`` regression maps; optional
    ``feat_student``/``feat_teacher`` ``(B, C, H', W')`` BEV embeddings. Returns a scalar.

    The released repository (sakharok13/X-Ray-Teacher-Patching-Tools) only builds the
    object-complete frames; the training code is not public, so this follows the paper's description
    (distillation on heads, embeddings and detections). Inferred: MSE on the raw head outputs. The
    third term, the detector's own loss with the teacher's boxes as pseudo-labels, is the detector's
    supervised loss and is left to the detector, as label losses are everywhere in this package.
    """

    def __init__(
        self,
        heatmap_weight: float = 1.0,
        box_weight: float = 1.0,
        feature_weight: float = 1.0,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.heatmap_weight, self.box_weight = heatmap_weight, box_weight
        self.feature_weight, self.loss_weight = feature_weight, loss_weight
        pairs = _pairs(student_channels, teacher_channels)
        self.adapter = None if pairs is None else nn.Conv2d(*pairs[0], kernel_size=1)

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        boxes_student: Tensor | None = None,
        boxes_teacher: Tensor | None = None,
        feat_student: Tensor | None = None,
        feat_teacher: Tensor | None = None,
    ) -> Tensor:
        check_same_shape(logits_student, logits_teacher, "heatmap")
        loss = self.heatmap_weight * F.mse_loss(logits_student, logits_teacher.detach())
        for weight, s, t, what in (
            (self.box_weight, boxes_student, boxes_teacher, "box regression map"),
            (self.feature_weight, feat_student, feat_teacher, "BEV embedding"),
        ):
            if (s is None) != (t is None):
                raise ValueError(f"give both student and teacher {what}s, or neither")
            if s is None:
                continue
            _check_lead(s, t, what=what)
            if what == "BEV embedding":
                s = _apply(self.adapter, s)
            check_same_shape(s, t, what)
            loss = loss + weight * F.mse_loss(s, t.detach())
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, k, r, c, s = (64, 10, 8, 256, 16) if large else (batch, 3, 4, 8, 4)

        def rand(*shape):
            return torch.randn(n, *shape, generator=generator, dtype=dtype)

        return {
            "logits_student": rand(k, s, s),
            "logits_teacher": rand(k, s, s),
            "boxes_student": rand(r, s, s),
            "boxes_teacher": rand(r, s, s),
            "feat_student": rand(c, s, s),
            "feat_teacher": rand(c, s, s),
        }


__all__ = [
    "ALPKD",
    "CD",
    "FAKD",
    "KA",
    "ChannelTransform",
    "DiffKD",
    "RawKD",
    "SemCKD",
    "XRayKD",
]
