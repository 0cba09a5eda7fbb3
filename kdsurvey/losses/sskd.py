"""Knowledge Distillation Meets Self-Supervision (Xu et al., ECCV 2020; ``xu2020knowledge``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs
from kdsurvey.losses._checks import check_same_batch, check_same_shape
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses._views import ROTATIONS as VIEWS
from kdsurvey.losses._views import rotations
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def _kept_rows(rank: Tensor, ratio: float) -> Tensor:
    """Rows to distil: every row whose correct answer the teacher ranks first, plus the
    ``int(ratio * wrong)`` others whose correct answer it ranks highest (ties by row order)."""
    wrong = int((rank != 0).sum())
    keep = (rank.numel() - wrong) + int(wrong * ratio)
    return torch.sort(torch.argsort(rank, stable=True)[:keep])[0]


def _kl_rows(log_p_s: Tensor, p_t: Tensor) -> Tensor:
    """``KL(p_t || p_s)`` summed over classes and averaged over the rows (0 for no rows)."""
    if log_p_s.shape[0] == 0:
        return log_p_s.sum() * 0
    return F.kl_div(log_p_s, p_t, reduction="batchmean")


def _rank_of(scores: Tensor, correct: Tensor) -> Tensor:
    """Position of the ``correct`` column in each row of ``scores`` sorted descending."""
    return (scores > scores.gather(1, correct.unsqueeze(1))).sum(1)


@register("sskd", paper="xu2020knowledge")
class SSKD(DistillationLoss):
    r"""Knowledge Distillation Meets Self-Supervision (Xu et al., ECCV 2020; catalogue id
    ``xu2020knowledge``).

    Every image comes with its rotations by 90, 180 and 270 degrees; both networks see all four
    views, rows ``4i..4i+3`` of the inputs (view 0, the original, first). Three distillation terms
    (cross-entropy on labels left out):

    * KD on the original views, :math:`\mathcal{L}_{kd} = T^2\,\mathrm{KL}(p^t_T \| p^s_T)`;
    * KD on the rotated views, :math:`\mathcal{L}_{tf} = T_{tf}^2\,\mathrm{KL}`, only on the views
      where the teacher ranks the label first, plus the ``ratio_tf`` fraction of the others where
      it ranks the label highest;
    * self-supervision KD: with the projection-head outputs, the cosine similarity of each rotated
      view to each original view of the batch, :math:`A_{(i,r),j} = \cos(z_{i,r}, z_{j,0})`
      (a :math:`3B\times B` matrix whose correct column for row :math:`(i,r)` is :math:`i`);
      :math:`\mathcal{L}_{ss} = T_{ss}^2\,\mathrm{KL}(\operatorname{softmax}(A^t/T_{ss}) \|
      \operatorname{softmax}(A^s/T_{ss}))` over the rows kept by the same rule with ``ratio_ss``.

    Each KL is summed over its columns and averaged over its kept rows, and

    .. math::
        \mathcal{L} = \lambda_{kd}\mathcal{L}_{kd} + \lambda_{tf}\mathcal{L}_{tf}
        + \lambda_{ss}\mathcal{L}_{ss}

    Args:
        temperature: :math:`T` of the KD term on the original views (4.0).
        tf_temperature: :math:`T_{tf}` of the KD term on the rotated views (4.0).
        ss_temperature: :math:`T_{ss}` of the similarity term (0.5).
        ratio_tf: fraction of the rotated views the teacher ranks wrongly that are still
            distilled (1.0).
        ratio_ss: fraction of the similarity rows the teacher ranks wrongly that are still
            distilled (0.75).
        kd_weight: :math:`\lambda_{kd}`, weight of the KD term on the original views (0.9).
        tf_weight: :math:`\lambda_{tf}`, weight of the KD term on the rotated views (2.7).
        ss_weight: :math:`\lambda_{ss}`, weight of the similarity term (10.0).
        student_channels: D_s, the student embedding's width. Given (with
            ``teacher_channels``), the loss owns the student's projection head of the official
            code (``wrapper.py``, ``proj_head``: ``Linear(D_s, D_s)``, ReLU, ``Linear(D_s, D_s)``,
            PyTorch default init) and ``feat_student`` is the student's pooled embedding.
            ``None`` (default): ``feat_student`` is already the head's output.
        teacher_channels: D_t, the teacher embedding's width (the teacher's head is not the
            loss's: see the notes).

    Notes:
        Shapes: ``logits_student``/``logits_teacher`` ``(4B, classes)``, ``feat_student``/
        ``feat_teacher`` ``(4B, D)`` projection-head outputs (widths may differ), ``target``
        ``(B,)`` labels of the original images; returns a scalar. Checked against the authors'
        code (xuguodong03/SSKD ``student.py``, the student training loop, losses
        ``loss2``-``loss4`` and their weighted sum, commit 661b972, run verbatim with the models
        stubbed); the rotations, backbones and the teacher's pre-trained projection head stay
        outside. Where the teacher gives equal ranks at the cut-off, the official code keeps
        whichever rows an unstable ``argsort`` puts first; here ties go to the earlier row (the
        cases have no such ties). The paper's defaults (:math:`T = T_{tf} = 4`,
        :math:`T_{ss} = 0.5`, weights 0.9, 2.7, 10, ratios 1.0, 0.75) are the code's.

        In the harness: the loss's ``views`` are the four rotations
        (:func:`kdsurvey.losses._views.rotations`), so :class:`kdsurvey.distill.Distiller` feeds
        both networks the ``4B`` rows and the label loss the originals. The official teacher's
        projection head is trained first (60 epochs of rotation-contrastive cross-entropy, the
        backbone frozen); the harness has no such teacher stage, so unless ``feat_teacher`` is
        given (``providers={"feat_teacher": ...}``, a trained head's output) the teacher's
        pooled embedding stands in for its head's output.
    """

    batch_invariant = False  # rows come in groups of four views
    views = staticmethod(rotations)
    presets = {
        "cifar100": Preset(
            source="xuguodong03/SSKD student.py:37-47 (commit 482ddde): --ce-weight 0.1, "
            "--kd-weight 0.9, --tf-weight 2.7, --ss-weight 10.0, --kd-T 4, --tf-T 4, --ss-T 0.5, "
            "--ratio-tf 1.0, --ratio-ss 0.75",
            task_weight=0.1,
        )
    }

    def __init__(
        self,
        temperature: float = 4.0,
        tf_temperature: float = 4.0,
        ss_temperature: float = 0.5,
        ratio_tf: float = 1.0,
        ratio_ss: float = 0.75,
        kd_weight: float = 0.9,
        tf_weight: float = 2.7,
        ss_weight: float = 10.0,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
    ):
        super().__init__()
        pairs = channel_pairs(student_channels, teacher_channels)
        self.head = None
        if pairs is not None:
            d = pairs[0][0]
            self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.temperature, self.tf_temperature, self.ss_temperature = (
            temperature,
            tf_temperature,
            ss_temperature,
        )
        self.ratio_tf, self.ratio_ss = ratio_tf, ratio_ss
        self.kd_weight, self.tf_weight, self.ss_weight = kd_weight, tf_weight, ss_weight

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
        feat_student: Tensor,
        feat_teacher: Tensor,
    ) -> Tensor:
        """The loss of one batch of ``B`` images, four views each.

        Args:
            logits_student: (4B, K) student logits, rows ``4i..4i+3`` the views of image ``i``.
            logits_teacher: (4B, K) teacher logits, in the same row order.
            target: (B,) int64 class labels of the original images.
            feat_student: (4B, D_s) student projection-head outputs, in the same row order (the
                student's embeddings when the loss owns the head).
            feat_teacher: (4B, D_t) teacher projection-head outputs, in the same row order.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "SSKD logits")
        if self.head is not None:
            feat_student = self.head(flatten_samples(feat_student))
        n = logits_student.shape[0]
        if n % VIEWS or target.shape != (n // VIEWS,) or feat_student.shape[0] != n:
            raise ValueError(
                f"SSKD expects {VIEWS} views per image: logits {tuple(logits_student.shape)}, "
                f"target {tuple(target.shape)}, student features {tuple(feat_student.shape)}; "
                "the Distiller builds them with the loss's views (rotations), or give views="
            )
        check_same_batch(feat_student, feat_teacher, "SSKD feature")
        b = n // VIEWS
        is_orig = torch.arange(n, device=logits_student.device) % VIEWS == 0
        z_t, f_t = logits_teacher.detach(), feat_teacher.detach()
        t_kd, t_tf, t_ss = self.temperature, self.tf_temperature, self.ss_temperature

        kd = (
            _kl_rows(
                F.log_softmax(logits_student[is_orig] / t_kd, dim=1),
                F.softmax(z_t[is_orig] / t_kd, dim=1),
            )
            * t_kd**2
        )

        # rotated views: keep those where the teacher ranks the label first, and some others
        p_t_aug = F.softmax(z_t[~is_orig] / t_tf, dim=1)
        label = target.repeat_interleave(VIEWS - 1)
        keep = _kept_rows(_rank_of(p_t_aug, label), self.ratio_tf)
        tf = (
            _kl_rows(F.log_softmax(logits_student[~is_orig] / t_tf, dim=1)[keep], p_t_aug[keep])
            * t_tf**2
        )

        # similarity of each rotated view to every original view
        def similarity(f: Tensor) -> Tensor:
            f = f.reshape(n, -1)
            return F.cosine_similarity(f[~is_orig].unsqueeze(1), f[is_orig].unsqueeze(0), dim=2)

        a_s, a_t = similarity(feat_student), similarity(f_t)
        owner = torch.arange(b, device=a_t.device).repeat_interleave(VIEWS - 1)
        keep = _kept_rows(_rank_of(a_t, owner), self.ratio_ss)
        ss = (
            _kl_rows(F.log_softmax(a_s / t_ss, dim=1)[keep], F.softmax(a_t / t_ss, dim=1)[keep])
            * t_ss**2
        )
        return self.kd_weight * kd + self.tf_weight * tf + self.ss_weight * ss

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        # ``batch`` counts rows (views), so the demo's networks give all of them
        b, classes, d = (64, 100, 128) if large else (max(2, batch // VIEWS), 10, 16)
        n = VIEWS * b
        return {
            "logits_student": torch.randn(n, classes, generator=generator, dtype=dtype),
            "logits_teacher": torch.randn(n, classes, generator=generator, dtype=dtype) * 2,
            "target": torch.randint(0, classes, (b,), generator=generator),
            "feat_student": torch.randn(n, d, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(n, d, generator=generator, dtype=dtype),
        }
