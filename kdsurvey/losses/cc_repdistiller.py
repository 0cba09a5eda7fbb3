"""RepDistiller's correlation-congruence loss (``distiller_zoo/CC.py``, ``Correlation``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from kdsurvey.losses._checks import check_same_batch, check_same_shape
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses._sources import REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("cc_repdistiller", paper="peng2019correlation")
class CCRepDistiller(DistillationLoss):
    r"""Correlation congruence as RepDistiller runs it (Peng et al., ICCV 2019; catalogue id
    ``peng2019correlation``, "Correlation Congruence for Knowledge Distillation").

    RepDistiller's ``Correlation`` is the code the CC authors shared with RepDistiller's author,
    restructured. With :math:`\delta_i = |f^s_i - f^t_i|` the element-wise gap between the
    (embedded) student and teacher features of sample :math:`i`, it correlates the gaps of
    consecutive samples of the batch:

    .. math::
        \mathcal{L} = \frac{w}{B-1}\sum_{i=1}^{B-1}\sum_d \delta_{i,d}\,\delta_{i+1,d}

    This is not the paper's kernel-matrix loss, which the ``cc`` loss implements (following
    torchdistill's ``CCKDLoss``); both are kept, for the two code bases' numbers. The loss depends
    on the order of the batch.

    Args:
        student_channels: width of the flattened student features. With the teacher's width also
            given, the loss owns RepDistiller's ``LinearEmbed`` heads (``nn.Linear(C, D)``,
            PyTorch default init, no normalisation); ``None`` (default): the inputs are already
            embedded.
        teacher_channels: width of the flattened teacher features, the input width of the
            teacher's head (used only together with the student's width).
        embed_dim: output width ``D`` of the two heads (128).
        loss_weight: ``w``, multiplies the whole loss (0.02: RepDistiller ``-b 0.02``).

    Notes:
        Shapes: ``feat_student`` and ``feat_teacher`` ``(B, D)`` (trailing dims flattened, equal
        widths after embedding), ``B >= 2``; returns a scalar. Checked against RepDistiller
        (HobbitLong/RepDistiller ``distiller_zoo/CC.py``, ``Correlation.forward``, commit
        b84f547) on already-embedded features; ``train_student.py`` applies ``LinearEmbed``
        (feature dim 128) to the penultimate features first. The paper's correlation matrix with
        a Gaussian kernel does not appear in this code.
    """

    batch_invariant = False

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(source=f"{REPDISTILLER_CIFAR}:L13 (-a 0 -b 0.02)"),
    }

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        embed_dim: int = 128,
        loss_weight: float = 0.02,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.embed_s = self.embed_t = None
        if student_channels is not None and teacher_channels is not None:
            self.embed_s = nn.Linear(student_channels, embed_dim)
            self.embed_t = nn.Linear(teacher_channels, embed_dim)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch (its order matters).

        Args:
            feat_student: (B, D) student features (embeddings when the loss has no heads).
            feat_teacher: (B, D) teacher features (embeddings when the loss has no heads).

        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "CC feature")
        f_s, f_t = flatten_samples(feat_student), flatten_samples(feat_teacher.detach())
        if self.embed_s is not None:
            f_s, f_t = self.embed_s(f_s), self.embed_t(f_t)
        check_same_shape(f_s, f_t, "CC embedding")
        if f_s.shape[0] < 2:
            raise ValueError(f"CC needs at least two samples, got {tuple(feat_student.shape)}")
        delta = (f_s - f_t).abs()
        return self.loss_weight * (delta[:-1] * delta[1:]).sum(1).mean()

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        n, d = (256, 128) if large else (batch, 16)
        return {
            "feat_student": torch.randn(n, d, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(n, d, generator=generator, dtype=dtype),
        }
