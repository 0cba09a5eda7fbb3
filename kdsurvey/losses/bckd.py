"""Block-Correlation KD (Wang et al., ICIP 2023; catalogue id ``wang2023bckd``, "BCKD: Block-Correlation Knowledge Distillation")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import MLPEmbed, apply_classifier, softmax_weighted_sum
from kdsurvey.losses._checks import check_same_batch, check_same_length, shape_tuple, tensor_list
from kdsurvey.losses._pooling import pool_to_smaller_square
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("bckd", paper="wang2023bckd", evidence="abstract")
class BCKD(DistillationLoss):
    r"""Block-Correlation KD (Wang et al., ICIP 2023; catalogue id ``wang2023bckd``,
    "BCKD: Block-Correlation Knowledge Distillation").

    The correlation of adjacent blocks :math:`l, l+1` of a network (the larger map average-pooled
    to the smaller, square size) is the flattened product of their channel-mean maps,
    :math:`R_l = \mathrm{vec}(\bar F_l\,\bar F_{l+1}^\top)\in\mathbb R^{H^2}`. An MLP per block pair
    and network embeds it (followed by L2 normalisation) into the teacher's penultimate space,
    :math:`e_l`, and the frozen teacher classifier gives :math:`u_l = W e_l + b`. With the stacked
    :math:`E=[e_l]\in\mathbb R^{P\times B\times D}` and :math:`U=[u_l]`, eight discrepancies are
    measured for each of :math:`E` and :math:`U`: the full tensors, their means over the embedding,
    over the batch (both summed over block pairs) and over the block pairs; they are combined with
    weights given by the softmax of their detached values:

    .. math:: \mathcal{L} = w\sum_{n=1}^{8}\operatorname{softmax}(\mathrm{sg}\,\ell)_n\,\ell_n

    Args:
        loss_type: the discrepancy: ``"mse"`` (default), ``"smooth_l1"``, ``"huber"`` or ``"l1"``.
        student_sizes: block heights :math:`H_l` of the student's stages. With ``teacher_sizes`` and
            ``teacher_dim`` the loss owns the MLPs (``Linear(H^2, 2D)-ReLU-Linear(2D, D)``, PyTorch
            default init; the teacher-side MLPs are trained too). ``None`` (default): the
            correlations are used directly and :math:`H^2` must equal :math:`D` for every pair.
        teacher_sizes: block heights :math:`H_l` of the teacher's stages; needed, like
            ``teacher_dim``, for the MLPs.
        teacher_dim: :math:`D`, the input width of the teacher's classifier: the width every MLP
            maps to.
        loss_weight: ``w`` (10, the reference script's ``-b``).

    Notes:
        Shapes: ``feats_student`` / ``feats_teacher``: lists of block outputs ``(B, C_l, H_l, W_l)``
        (channel counts may differ); ``classifier_teacher``: the teacher's final ``nn.Linear`` (or its
        weight, or ``(weight, bias)``), used frozen. The paper's code is not public; this follows the
        public repository BTAEYANG/initialDemo (``paper_skd/SKD.py``, "Stage Relation Distilling
        Loss"), whose block-pair correlation, MLP and teacher-classifier design is the one the abstract
        describes; it is not confirmed to be the authors' code. As with ``calibrated_mask``, that
        script's truthy ``--reverse`` default, which pairs the weights with the reversed loss list, is
        not reproduced.
    """

    _LOSSES = {
        "mse": F.mse_loss,
        "smooth_l1": F.smooth_l1_loss,
        "huber": F.huber_loss,
        "l1": F.l1_loss,
    }

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="BTAEYANG/initialDemo@dcea892 train_student.py:L70-72 (-r 1, -b 10)",
            note="a public repository that matches the paper, not confirmed as the authors' code",
        ),
    }

    def __init__(
        self,
        loss_type: str = "mse",
        student_sizes: Sequence[int] | None = None,
        teacher_sizes: Sequence[int] | None = None,
        teacher_dim: int | None = None,
        loss_weight: float = 10.0,
    ):
        super().__init__()
        if loss_type not in self._LOSSES:
            raise ValueError(f"loss_type must be one of {sorted(self._LOSSES)}, got {loss_type!r}")
        self.loss_type = loss_type
        self.loss_weight = loss_weight
        self.embed_s = self.embed_t = None
        if student_sizes is not None and teacher_sizes is not None and teacher_dim is not None:
            self.embed_s = nn.ModuleList(
                MLPEmbed(min(a, b) ** 2, teacher_dim)
                for a, b in zip(student_sizes[:-1], student_sizes[1:], strict=True)
            )
            self.embed_t = nn.ModuleList(
                MLPEmbed(min(a, b) ** 2, teacher_dim)
                for a, b in zip(teacher_sizes[:-1], teacher_sizes[1:], strict=True)
            )

    @staticmethod
    def block_correlations(feats: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for bot, top in zip(feats[:-1], feats[1:], strict=True):
            bot, top = pool_to_smaller_square(bot, top)
            bot, top = bot.mean(1), top.mean(1)
            out.append(flatten_samples(torch.bmm(bot, top.transpose(1, 2))))
        return out

    def _embed(self, feats: Sequence[Tensor], embeds: nn.ModuleList | None) -> Tensor:
        rel = self.block_correlations(feats)
        if embeds is not None:
            if len(embeds) != len(rel):
                raise ValueError(f"{len(rel)} block pairs but {len(embeds)} embeddings")
            rel = [m(r) for m, r in zip(embeds, rel, strict=True)]
        return torch.stack([F.normalize(r, dim=1) for r in rel])

    def forward(
        self,
        feats_student: Sequence[Tensor],
        feats_teacher: Sequence[Tensor],
        classifier_teacher: Any,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.
            classifier_teacher: the teacher's frozen final ``nn.Linear``, or its (K, D) weight,
                or ``(weight, bias)``.

        Returns:
            The scalar loss.
        """
        feats_student, feats_teacher = tensor_list(feats_student), tensor_list(feats_teacher)
        check_same_length(feats_student, feats_teacher)
        if len(feats_student) < 2:
            raise ValueError("BCKD needs at least two blocks")
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_batch(s, t, "BCKD block feature")
        e_s = self._embed(feats_student, self.embed_s)
        e_t = self._embed([t.detach() for t in feats_teacher], self.embed_t)
        if e_s.shape != e_t.shape:
            raise ValueError(
                f"block correlations differ: student {shape_tuple(e_s)} vs teacher {shape_tuple(e_t)}"
            )
        u_s, u_t = (
            apply_classifier(e_s, classifier_teacher),
            apply_classifier(e_t, classifier_teacher),
        )
        crit = self._LOSSES[self.loss_type]
        losses = []
        for s, t in ((e_s, e_t), (u_s, u_t)):
            losses += [
                crit(s, t),
                sum(crit(a.mean(1), b.mean(1)) for a, b in zip(s, t, strict=True)),
                sum(crit(a.mean(0), b.mean(0)) for a, b in zip(s, t, strict=True)),
                crit(s.mean(0), t.mean(0)),
            ]
        return self.loss_weight * softmax_weighted_sum(losses)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, c, h, k = (64, 256, 16, 100) if large else (batch, 8, 4, 10)

        def r(*s):
            return torch.randn(*s, generator=generator, dtype=dtype)

        shapes = [(n, c, h, h), (n, 2 * c, h, h), (n, 2 * c, 2 * h, 2 * h)]
        return {
            "feats_student": [r(*s) for s in shapes],
            "feats_teacher": [r(*s) for s in shapes],
            "classifier_teacher": r(k, h * h) / h,
        }
