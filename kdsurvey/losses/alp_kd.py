"""Attention-based layer projection ("ALP-KD: Attention-Based Layer Projection for Knowledge Distillation", Passban et al., AAAI 2021; catalogue id ``passban2021alp``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kdsurvey.losses._adapters import apply_optional, channel_pairs
from kdsurvey.losses._checks import check_leading_dims, check_same_shape
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("alp_kd", paper="passban2021alp", evidence="paper")
class ALPKD(DistillationLoss):
    r"""Attention-based layer projection ("ALP-KD: Attention-Based Layer Projection for Knowledge
    Distillation", Passban et al., AAAI 2021; catalogue id ``passban2021alp``).

    Each student layer attends over all teacher layers and matches the attention-weighted mix:

    .. math::
        \alpha_{ij} = \frac{\exp(h^i_S\cdot h^j_T)}{\sum_k \exp(h^i_S\cdot h^k_T)},\qquad
        \mathcal{L} = w\sum_{i=1}^{m}\mathrm{MSE}\Big(h^i_S,\ \sum_{j=1}^{n}\alpha_{ij}\,h^j_T\Big)

    computed per input (and per token when hidden states carry a token axis).

    Args:
        student_channels: the student's hidden size. When it differs from ``teacher_channels`` the
            loss owns one ``Linear`` (PyTorch default init) applied to every student layer before
            the attention. ``None`` (default): the widths already agree, as for the paper's
            students.
        teacher_channels: the teacher's hidden size, the width that ``Linear`` maps to. Give it
            together with ``student_channels``, or leave both ``None``.
        loss_weight: ``w`` (the paper's :math:`\lambda`; default 1).

    Notes:
        Shapes: ``feats_student`` (``m`` tensors) and ``feats_teacher`` (``n`` tensors, ``m != n``
        allowed) of shape ``(B, D)`` (e.g. the ``[CLS]`` vectors the paper matches) or ``(B, T, D)``
        (every token attends separately). Returns a scalar.

        No official code; written from the paper (dot-product attention without scaling, MSE averaged
        over batch and hidden units, summed over student layers). The projection is this
        project's adapter, neither the authors' nor a library's: the paper's students share the
        teacher's hidden size. Teacher layers must share one shape (the error names the two
        that differ). ``zero_at_match`` is False: the target
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
        pairs = channel_pairs(student_channels, teacher_channels)
        self.projection = None
        if pairs is not None and pairs[0][0] != pairs[0][1]:
            self.projection = nn.Linear(*pairs[0])

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, N, D) student hidden states, one per layer.
            feats_teacher: list of (B, N, D) teacher hidden states, one per layer.

        Returns:
            The scalar loss.
        """
        first = feats_teacher[0]
        for j, h in enumerate(feats_teacher):
            if h.shape != first.shape:
                raise ValueError(
                    f"ALP-KD attends over teacher layers of one shape, but teacher layer {j} is "
                    f"{tuple(h.shape)} and teacher layer 0 is {tuple(first.shape)}: tap teacher "
                    "layers of one width (e.g. a transformer's hidden states)"
                )
        for h in feats_student:
            check_leading_dims(h, first, dims=first.dim() - 1, what="hidden state")
        hs = torch.stack(
            [apply_optional(self.projection, h) for h in feats_student]
        )  # (m, B, [T], D)
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
