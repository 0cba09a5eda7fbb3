"""Channel distillation with guided KD and early-decay teacher ("Channel Distillation: Channel-Wise Attention for Knowledge Distillation", Zhou et al., arXiv 2020; catalogue id ``zhou2020channel``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs, conv_bn_relu
from kdsurvey.losses._checks import check_leading_dims, check_same_length, check_same_shape
from kdsurvey.losses._kl import kl_of_logits
from kdsurvey.losses.base import DistillationLoss, Preset, feature_example, logits_example
from kdsurvey.losses.registry import register


@register("cd", paper="zhou2020channel")
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
        student_channels: C_s, the student's channel counts (a sequence, one per stage). Given with
            ``teacher_channels``, the loss owns the official connectors (1x1 conv without bias, BN,
            ReLU; PyTorch default init). ``None`` (default): no adapter, the student input is
            already adapted.
        teacher_channels: C_t, the teacher's channel counts (one per stage): the width the adapter
            maps the student to. Give it together with ``student_channels``, or leave both ``None``.
        cd_weight: :math:`\alpha` (default 6, official configs).
        kd_weight: :math:`\beta` (default 1, ImageNet; CIFAR-100 uses 0.1).
        temperature: ``T`` (default 1, official).
        decay_factor: :math:`\gamma` (default 0.9).
        decay_milestones: an int ``m`` gives :math:`k = \lfloor e/m\rfloor` (default 30, ImageNet);
            a sequence gives the number of milestones :math:`\le e` (CIFAR-100: ``(60, 160)``).
        kd_start_epoch: :math:`e_0`, GKD is off while ``epoch <= e_0`` (default 30; CIFAR 60).
        loss_weight: ``w`` (1; the official configs weight the terms inside).

    Notes:
        Forward: ``feats_student``/``feats_teacher`` lists of ``(B, C, H, W)`` (spatial sizes may
        differ, ``(B, C)`` must agree); optional ``logits_student``, ``logits_teacher`` ``(B, K)`` with
        ``target`` ``(B,)`` for GKD; optional ``epoch`` (``None``: no schedule, weights constant).

        Checked against zhouzaida/channel-distillation (``losses/cd_loss.py`` ``CDLoss``,
        ``losses/kd_loss.py`` ``KDLossv2``, ``utils/util.py`` ``adjust_loss_alpha`` with ``lrdv2``).
        When no sample is correctly classified the official GKD divides by zero; here it is 0.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="zhouzaida/channel-distillation@2464d30 imagenet_config.py:L18-41 (CE 1; KDLossv2 "
            "T 1, rate 1; CDLoss rate 6, factor 0.9; lrdv2) and utils/util.py:L7-11",
        ),
        "cifar100": Preset(
            source="zhouzaida/channel-distillation@2464d30 cifar_config.py:L17-40 (KDLossv2 rate 0.1) "
            "and utils/util.py:L15-23 (milestones 60, 160; GKD off until epoch 60)",
            kwargs={"kd_weight": 0.1, "decay_milestones": (60, 160), "kd_start_epoch": 60},
        ),
    }

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
        pairs = channel_pairs(student_channels, teacher_channels)
        self.connectors = None
        if pairs is not None:
            self.connectors = nn.ModuleList(conv_bn_relu(s, t) for s, t in pairs)

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
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            target: (B,) int64 class labels.
            epoch: current training epoch, for the official schedule (``None``: the schedule is
                off).

        Returns:
            The scalar loss.
        """
        check_same_length(feats_student, feats_teacher)
        if self.connectors is not None:
            check_same_length(feats_student, self.connectors)
            feats_student = [c(f) for c, f in zip(self.connectors, feats_student, strict=True)]
        cd = 0.0
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_leading_dims(s, t, dims=2)
            cd = cd + F.mse_loss(s.flatten(2).mean(2), t.detach().flatten(2).mean(2))
        cd_factor, kd_factor = self.schedule(epoch)
        loss = self.cd_weight * cd_factor * cd
        if logits_student is not None or logits_teacher is not None:
            if logits_student is None or logits_teacher is None or target is None:
                raise ValueError("GKD needs logits_student, logits_teacher and target together")
            check_same_shape(logits_student, logits_teacher, "logits")
            t = self.temperature
            correct = (logits_teacher.argmax(1) == target).to(logits_student.dtype)
            kl = kl_of_logits(logits_student, logits_teacher.detach(), t)
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
