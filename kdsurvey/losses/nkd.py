"""Normalized KD (NKD) of Yang et al., ICCV 2023 (catalogue id ``yang2023knowledge``)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import gt_mask
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("nkd", paper="yang2023knowledge")
class NKD(DistillationLoss):
    r"""Normalized KD loss (Yang et al., ICCV 2023; catalogue id ``yang2023knowledge``).

    KD's cross-entropy is split into a target term and a non-target term; the non-target
    probabilities of both networks are renormalised to sum to one, so the non-target knowledge is
    not scaled down by the (usually large) target probability. The target term uses the
    unsoftened teacher probability of the label as the soft target; the non-target term is a
    temperature-softened cross-entropy between the normalised non-target distributions:

    .. math:: \mathcal{L} = w\Big[-\frac{1}{B}\sum_b p^t_{b,y_b}\log p^s_{b,y_b}
              \;-\;\gamma\,T^2\,\frac{1}{B}\sum_b\sum_{i\ne y_b}
              \hat q^t_{b,i}\log \hat q^s_{b,i}\Big],\qquad
              p = \sigma(z),\quad \hat q_{b} = \sigma\big(z_{b,\setminus y_b}/T\big)

    where :math:`z_{b,\setminus y_b}` is the logit vector with the label's entry removed (a
    softmax over the remaining classes equals renormalising them).

    Args:
        temperature: ``T``, softens the non-target distributions (official ImageNet ResNet
            config 1.0; CIFAR-100 config 3.0).
        gamma: weight of the non-target term (official ImageNet ResNet config 1.5; CIFAR-100
            config 3.5; DeiT configs 1.0).
        loss_weight: ``w``, multiplies the whole loss (1).

    Notes:
        Checked against yzd-v/cls_KD ``mmcls/models/dis_losses/nkd.py::NKDLoss.forward`` (commit
        1e5d48f36957ee460d39d7ebc592c6cc7f8f3d66). As there, both terms are cross-entropies (not
        KL divergences), so the loss is not zero when student and teacher agree, and the target
        term is averaged over the batch without a temperature. Soft (one-hot) labels, which the
        official code reduces with an argmax, are not accepted: pass class indices. USKD, the
        paper's teacher-free variant with Zipf soft labels, is not implemented.
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="yzd-v/cls_KD@1e5d48f configs/distillers/imagenet/res34_distill_res18_img.py:"
            "L67-68 (temp 1.0, gamma 1.5)",
        ),
        "cifar100": Preset(
            source="yzd-v/cls_KD@1e5d48f configs/distillers/cifar100/res34_distill_res18_cifar.py:"
            "L67-68 (temp 3.0, gamma 3.5)",
            kwargs={"temperature": 3.0, "gamma": 3.5},
        ),
    }

    def __init__(self, temperature: float = 1.0, gamma: float = 1.5, loss_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.gamma = gamma
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            target: (B,) int64 class labels.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        check_target(logits_student, target)
        z_t = logits_teacher.detach()
        b, c = logits_student.shape
        label = target.reshape(b, 1)
        log_p_s_label = F.log_softmax(logits_student, dim=1).gather(1, label)
        p_t_label = F.softmax(z_t, dim=1).gather(1, label)
        target_term = -(p_t_label * log_p_s_label).mean()

        keep = ~gt_mask(logits_student, target)
        t = self.temperature
        rest_s = logits_student[keep].reshape(b, c - 1) / t
        rest_t = z_t[keep].reshape(b, c - 1) / t
        cross = (F.softmax(rest_t, dim=1) * F.log_softmax(rest_s, dim=1)).sum(1).mean()
        return self.loss_weight * (target_term - self.gamma * t * t * cross)
