"""Curriculum Temperature KD (CTKD) of Li et al., AAAI 2023 (``li2023curriculum``): KD with an
adversarially learned global temperature."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses._kl import kl_of_logits
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


class _ReverseGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``-lambda_``."""

    @staticmethod
    def forward(ctx, x: Tensor, lambda_: float) -> Tensor:
        ctx.lambda_ = lambda_
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.lambda_ * grad, None


@register("ctkd", paper="li2023curriculum")
class CTKD(DistillationLoss):
    r"""Curriculum Temperature for KD (Li et al., AAAI 2023; catalogue id ``li2023curriculum``).

    Vanilla KD whose temperature is a learnable parameter trained *adversarially*: it receives
    the gradient of the distillation loss through a gradient-reversal layer, so the optimiser
    that minimises the loss for the student maximises it for the temperature. The reversal is
    scaled by a curriculum factor :math:`\lambda` that grows from 0 to 1 over the first epochs,
    so the task gets harder gradually. The global temperature is a squashed scalar
    :math:`\theta`:

    .. math:: T = T_{start} + T_{range}\,\varsigma\big(\mathrm{GRL}_\lambda(\theta)\big),\qquad
              \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\sigma(z^t_b/T)\,\|\,\sigma(z^s_b/T)\big),\qquad
              \frac{\partial\mathcal{L}}{\partial\theta}\Big|_{\mathrm{GRL}}
              = -\lambda\,\frac{\partial\mathcal{L}}{\partial\theta}

    with :math:`\varsigma` the logistic sigmoid; ``GRL`` is the identity in the forward pass.
    :math:`\theta` is the parameter ``theta`` of this module, so the student's optimiser must
    also hold this loss's parameters. :math:`\lambda` is the attribute ``lambda_``, set once per
    epoch by the training loop, e.g. ``loss.lambda_ = CTKD.cosine_lambda(epoch)`` (the paper's
    cosine curriculum); it changes only the gradient reaching ``theta``, never the loss value or
    the student's gradient, which is why it is state and not a forward input.

    Args:
        t_start: :math:`T_{start}`, the lowest reachable temperature (official ``--t_start`` 1).
        t_range: :math:`T_{range}`, the width of the reachable temperature interval (official
            ``--t_end`` 20).
        init_theta: initial value of ``theta`` (official 1, an initial temperature of about
            15.6 with the official interval).
        lambda_: curriculum factor :math:`\lambda\ge 0` scaling the reversed gradient; 1 is the
            value the official schedule reaches after its 10 warm-up epochs.
        loss_weight: ``w``, multiplies the whole loss (0.9, the official ``-a``).

    Notes:
        Checked against zhengli97/CTKD ``models/temp_global.py::Global_T`` with
        ``distiller_zoo/KD.py::DistillKL`` as combined in ``helper/loops.py::train_distill``
        (commit 7d5252241259ae70d38a832371fed9697d15fc14), including the gradient reaching the
        temperature parameter. Sign convention: the official ``GradientReversalFunction``
        multiplies the gradient by its argument *without* negating it and is passed a cosine
        decay from 0 to -1 (``--decay_max 0 --decay_min -1 --decay_loops 10``); here
        :math:`\lambda` is the paper's non-negative factor and the negation is in the layer, so
        the official value equals ``-lambda_``. The temperature is computed in the logits'
        dtype (``theta`` is cast first); the official ``float32`` parameter rounds ``T`` to
        single precision, so the reference cases were run with the official module converted
        to ``float64``. Only the global temperature (official ``--mlp_name global``) is
        implemented, not an instance-wise one.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="zhengli97/CTKD@7d52522 scripts/run_cifar_distill.sh:L19-22 (-r 0.1 -a 0.9 -b 0 "
            "--kd_T 4, --decay_max 0 --decay_min -1 --decay_loops 10); train_student.py:L89-90 "
            "(--t_start 1 --t_end 20)",
            task_weight=0.1,
            note="lambda_ follows a cosine curriculum from 0 to 1 over the first 10 epochs "
            "(CTKD.cosine_lambda), which the training loop sets",
        ),
    }

    def __init__(
        self,
        t_start: float = 1.0,
        t_range: float = 20.0,
        init_theta: float = 1.0,
        lambda_: float = 1.0,
        loss_weight: float = 0.9,
    ):
        super().__init__()
        self.t_start = t_start
        self.t_range = t_range
        self.theta = nn.Parameter(torch.full((1,), float(init_theta)))
        self.lambda_ = lambda_
        self.loss_weight = loss_weight

    @staticmethod
    def cosine_lambda(
        epoch: float, num_loops: float = 10, lambda_min: float = 0.0, lambda_max: float = 1.0
    ) -> float:
        """The paper's curriculum: ``lambda_min`` at epoch 0 rising along a half cosine to
        ``lambda_max`` at epoch ``num_loops``, constant afterwards (official defaults)."""
        i = min(max(epoch, 0), num_loops)
        return (
            lambda_min + (lambda_max - lambda_min) * (1.0 - math.cos(math.pi * i / num_loops)) / 2
        )

    def temperature(self, dtype: torch.dtype | None = None) -> Tensor:
        """The current temperature ``T`` (shape ``(1,)``, in ``dtype`` if given), with the
        gradient reversal applied."""
        theta = self.theta if dtype is None else self.theta.to(dtype)
        reversed_theta = _ReverseGrad.apply(theta, self.lambda_)
        return self.t_start + self.t_range * torch.sigmoid(reversed_theta)

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature(logits_student.dtype)
        kl = kl_of_logits(logits_student, logits_teacher.detach(), t).mean()
        return self.loss_weight * (kl * t * t).squeeze(0)
