"""Binary KD (BKD) of VanillaKD (Hao et al., NeurIPS 2023; ``hao2023revisit``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("bkd", paper="hao2023revisit")
class BKD(DistillationLoss):
    r"""Binary KD of VanillaKD (Hao et al., NeurIPS 2023; catalogue id ``hao2023revisit``).

    Each class is treated as an independent binary problem: the student's sigmoid output for
    class :math:`i` is trained with binary cross-entropy towards the teacher's softmax
    probability of that class (the KD counterpart of the BCE classification loss of the timm
    ImageNet recipes the paper trains with):

    .. math:: \mathcal{L} = -\frac{w}{BC}\sum_{b,i}\Big[p^t_{b,i}\log\varsigma(z^s_{b,i})
              + (1 - p^t_{b,i})\log\big(1 - \varsigma(z^s_{b,i})\big)\Big],\qquad
              p^t_b = \sigma(z^t_b)

    with :math:`\varsigma` the logistic sigmoid and :math:`\sigma` the softmax.

    Args:
        loss_weight: ``w``, multiplies the whole loss (``--kd_loss_weight``).

    Notes:
        Checked against Hao840/vanillaKD ``losses/bkd.py::BinaryKLDiv.forward`` (commit
        a27b029f693a13d67b85c61a52e25a85f9414e70), which uses no temperature and averages over
        batch and classes. Despite the official class name it is a cross-entropy, not a KL
        divergence: it is not zero when student and teacher logits are equal.
    """

    zero_at_match = False

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        p_t = F.softmax(logits_teacher.detach(), dim=1)
        return self.loss_weight * F.binary_cross_entropy_with_logits(logits_student, p_t)
