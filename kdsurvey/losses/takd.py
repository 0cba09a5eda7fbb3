"""Teacher Assistant KD (Mirzadeh et al., AAAI 2020; ``mirzadeh2020improved``)."""

from __future__ import annotations

from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses._kl import kl_of_logits
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("takd", paper="mirzadeh2020improved")
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

    Notes:
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
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        kl = kl_of_logits(logits_student / t, logits_teacher.detach() / t)
        return self.loss_weight * t * t * kl.sum() / logits_student.numel()
