"""Contrastive Representation Distillation (Tian et al., ICLR 2020; ``tian2020contrastive``)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._checks import check_same_batch
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses._sources import MDISTILLER_CFG, REPDISTILLER, REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def _scores(bank: Tensor, contrast_idx: Tensor, anchor: Tensor) -> Tensor:
    """``<bank[contrast_idx[b, k]], anchor[b]>`` as ``(B, K+1)``: the rows gathered and dotted, or,
    when the bank has fewer rows than are drawn (a small dataset with CRD's 16,384 negatives),
    every row scored once and the scores gathered; the same values at a fraction of the memory."""
    if bank.shape[0] < contrast_idx.numel():
        # a copy: the banks are updated in place after the step, and backward needs these rows
        return (anchor @ bank.clone().T).gather(1, contrast_idx)  # (B, N), then (B, K+1)
    return torch.einsum("bkd,bd->bk", bank[contrast_idx], anchor)


@register("crd", paper="tian2020contrastive")
class CRD(DistillationLoss):
    r"""Contrastive Representation Distillation (Tian, Krishnan & Isola, ICLR 2020; catalogue id
    ``tian2020contrastive``).

    Student and teacher features are embedded (optionally through a linear head) and L2-normalised,
    :math:`v^s_i, v^t_i`. Two memory banks hold one unit vector per training sample,
    :math:`M^s` (past student embeddings) and :math:`M^t` (past teacher embeddings). For sample
    :math:`i` with dataset index :math:`y_i` and sampled indices :math:`n_{i,0} = y_i` (the
    positive), :math:`n_{i,1..K}` (negatives), the critic
    :math:`h(v, m) = e^{v\cdot m/\tau} / Z` (:math:`Z` fixed on the first call as :math:`N` times
    the mean of the exponentials, separately for each side) gives the NCE loss with noise
    probability :math:`1/N` (:math:`N` the dataset size, the banks' length):

    .. math::
        \ell(v, M) = -\frac1B\sum_i\Big[\log\frac{h(v_i, M_{y_i})}{h(v_i, M_{y_i}) + K/N + \epsilon}
        + \sum_{k=1}^{K}\log\frac{K/N}{h(v_i, M_{n_{i,k}}) + K/N + \epsilon}\Big],\qquad
        \mathcal{L} = w\,\big[\ell(v^s, M^t) + \ell(v^t, M^s)\big]

    with :math:`\epsilon = 10^{-7}`. After the loss, the rows :math:`y_i` of each bank move towards
    the new embeddings, :math:`M_{y_i} \leftarrow \operatorname{normalize}(m M_{y_i} + (1-m) v_i)`
    (no gradient). Only :math:`\ell(v^s, M^t)` reaches the student; :math:`\ell(v^t, M^s)` trains
    the teacher's embedding head.

    Args:
        n_data: dataset size :math:`N`; when given, the loss creates its two memory banks
            (``None``: the banks must be passed to ``forward``).
        feat_dim: embedding width :math:`D` of the banks and of the linear heads (128).
        student_channels: width of the flattened student features. With the teacher's width
            also given, the loss owns the two linear embedding heads (``nn.Linear(C, D)``,
            PyTorch default init); ``None`` (default): the inputs are already embedded (they are
            still L2-normalised here).
        teacher_channels: width of the flattened teacher features, the input width of the
            teacher's head (used only together with the student's width).
        nce_k: number :math:`K` of negatives drawn uniformly when ``forward`` gets no
            ``contrast_idx`` (16384).
        nce_t: temperature :math:`\tau` of the critic (0.07).
        nce_m: momentum :math:`m` of the bank update (0.5).
        loss_weight: ``w``, multiplies the whole loss (0.8: the authors' RepDistiller ``-b 0.8``).

    Notes:
        Shapes: ``feat_student`` ``(B, ...)`` and ``feat_teacher`` ``(B, ...)`` (flattened; equal
        widths when there are no heads), ``idx`` ``(B,)`` int64, ``contrast_idx`` ``(B, K+1)``
        int64, banks ``(N, D)``; returns a scalar.

        The random parts are inputs: ``idx`` are the samples' dataset indices and ``contrast_idx``
        the sampled bank rows, positive first (what RepDistiller's ``CIFAR100InstanceSample``
        returns); without ``contrast_idx`` the loss draws ``nce_k`` negatives uniformly. The banks
        are buffers created with ``n_data`` and initialised uniformly in
        :math:`\pm 1/\sqrt{D/3}` like the official ones; ``forward`` may be given the banks
        instead, which then replace the buffers before the step (to replay a state, as the
        reference cases do, or to run without ``n_data``). The normalisation constants :math:`Z`
        are float64 buffers set on the first call.

        Checked against RepDistiller (HobbitLong/RepDistiller ``crd/criterion.py``
        ``CRDLoss.forward`` with ``ContrastLoss``, and ``crd/memory.py``
        ``ContrastMemory.forward``, commit b84f547), with the heads' linear layers set to the
        identity and the banks set to the case's: value, student gradient and the updated banks.
        The official ``params`` buffer is float32 (it rounds ``nce_t``); the cases rebuilt it in
        float64. The paper's Eq. (18) is the same NCE bound; :math:`Z`, the memory momentum and
        the symmetric teacher-anchored term come from the code. torchdistill's ``CRDLoss`` was not
        run.
    """

    zero_at_match = False  # a contrastive bound, not a distance

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{REPDISTILLER_CIFAR}:L29 (-a 0 -b 0.8); {REPDISTILLER} train_student.py:L81-85 (feat_dim 128, "
            f"nce_k 16384, nce_t 0.07, nce_m 0.5); {MDISTILLER_CFG}:L141-147",
        ),
    }

    def __init__(
        self,
        n_data: int | None = None,
        feat_dim: int = 128,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        nce_k: int = 16384,
        nce_t: float = 0.07,
        nce_m: float = 0.5,
        loss_weight: float = 0.8,
    ):
        super().__init__()
        self.nce_k, self.nce_t, self.nce_m, self.loss_weight = nce_k, nce_t, nce_m, loss_weight
        self.embed_s = self.embed_t = None
        if student_channels is not None and teacher_channels is not None:
            self.embed_s = nn.Linear(student_channels, feat_dim)
            self.embed_t = nn.Linear(teacher_channels, feat_dim)
        if n_data is not None:
            stdv = 1.0 / math.sqrt(feat_dim / 3)
            self.register_buffer("memory_student", torch.rand(n_data, feat_dim) * 2 * stdv - stdv)
            self.register_buffer("memory_teacher", torch.rand(n_data, feat_dim) * 2 * stdv - stdv)
        else:
            self.register_buffer("memory_student", None)
            self.register_buffer("memory_teacher", None)
        # normalisation constants Z, set on the first call (negative: not set yet)
        self.register_buffer("z_student", torch.tensor(-1.0, dtype=torch.float64))
        self.register_buffer("z_teacher", torch.tensor(-1.0, dtype=torch.float64))

    def _nce(self, out: Tensor) -> Tensor:
        """``ContrastLoss``: NCE loss of ``(B, K+1)`` critic values, positive in column 0."""
        eps = 1e-7
        k = out.shape[1] - 1
        noise = k / self.memory_student.shape[0]
        log_pos = torch.log(out[:, 0] / (out[:, 0] + noise + eps))
        log_neg = torch.log(noise / (out[:, 1:] + noise + eps))
        return -(log_pos.sum() + log_neg.sum()) / out.shape[0]

    def forward(
        self,
        feat_student: Tensor,
        feat_teacher: Tensor,
        idx: Tensor,
        contrast_idx: Tensor | None = None,
        memory_student: Tensor | None = None,
        memory_teacher: Tensor | None = None,
    ) -> Tensor:
        """The loss of one batch; updates the memory banks.

        Args:
            feat_student: (B, *) student features (embeddings when the loss has no heads).
            feat_teacher: (B, *) teacher features (embeddings when the loss has no heads).
            idx: (B,) int64 dataset indices of the samples, the bank rows updated after the step.
            contrast_idx: (B, K+1) int64 bank rows to contrast with, the positive ``idx`` first;
                drawn uniformly when left out.
            memory_student: (N, D) bank of past student embeddings, replacing the loss's own
                before the step.
            memory_teacher: (N, D) bank of past teacher embeddings, replacing the loss's own
                before the step.

        Returns:
            The scalar loss.
        """
        if feat_student.dim() < 2 or feat_teacher.dim() < 2:
            raise ValueError(
                f"CRD features must be (B, *): student {tuple(feat_student.shape)} vs teacher "
                f"{tuple(feat_teacher.shape)}"
            )
        check_same_batch(feat_student, feat_teacher, "CRD feature")
        b = feat_student.shape[0]
        if idx.shape != (b,):
            raise ValueError(f"CRD idx must be ({b},), got {tuple(idx.shape)}")
        for name, bank in (("memory_student", memory_student), ("memory_teacher", memory_teacher)):
            if bank is not None:
                setattr(self, name, bank.detach().to(feat_student.dtype).clone())
        if self.memory_student is None or self.memory_teacher is None:
            raise ValueError("CRD has no memory banks: build it with n_data or pass both memories")
        f_s = flatten_samples(feat_student)
        f_t = flatten_samples(feat_teacher.detach())
        if self.embed_s is not None:
            f_s, f_t = self.embed_s(f_s), self.embed_t(f_t)
        v_s, v_t = F.normalize(f_s, dim=1), F.normalize(f_t, dim=1)
        if v_s.shape[1] != self.memory_student.shape[1] or v_t.shape[1] != v_s.shape[1]:
            raise ValueError(
                f"CRD embedding widths differ: student {tuple(v_s.shape)}, teacher "
                f"{tuple(v_t.shape)}, memory {tuple(self.memory_student.shape)}"
            )
        n_data = self.memory_student.shape[0]
        if contrast_idx is None:
            contrast_idx = torch.randint(0, n_data, (b, self.nce_k + 1), device=idx.device)
            contrast_idx[:, 0] = idx
        if contrast_idx.dim() != 2 or contrast_idx.shape[0] != b:
            raise ValueError(
                f"CRD contrast_idx must be ({b}, K+1), got {tuple(contrast_idx.shape)}"
            )
        # student anchor against the teacher bank, teacher anchor against the student bank
        out_s = torch.exp(_scores(self.memory_teacher.detach(), contrast_idx, v_s) / self.nce_t)
        out_t = torch.exp(_scores(self.memory_student.detach(), contrast_idx, v_t) / self.nce_t)
        with torch.no_grad():
            if self.z_student < 0:
                self.z_student.fill_(out_s.mean().item() * n_data)
            if self.z_teacher < 0:
                self.z_teacher.fill_(out_t.mean().item() * n_data)
        loss = self._nce(out_s / self.z_student) + self._nce(out_t / self.z_teacher)
        with torch.no_grad():
            m = self.nce_m
            new_s = F.normalize(self.memory_student[idx] * m + v_s.detach() * (1 - m), dim=1)
            new_t = F.normalize(self.memory_teacher[idx] * m + v_t.detach() * (1 - m), dim=1)
            self.memory_student.index_copy_(0, idx, new_s)
            self.memory_teacher.index_copy_(0, idx, new_t)
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        n, d, n_data, k = (256, 128, 4096, 1024) if large else (batch, 16, 5 * batch + 1, 8)
        idx = torch.randperm(n_data, generator=generator)[:n]
        contrast_idx = torch.randint(0, n_data, (n, k + 1), generator=generator)
        contrast_idx[:, 0] = idx
        return {
            "feat_student": torch.randn(n, d, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(n, d, generator=generator, dtype=dtype),
            "idx": idx,
            "contrast_idx": contrast_idx,
            "memory_student": F.normalize(
                torch.randn(n_data, d, generator=generator, dtype=dtype), dim=1
            ),
            "memory_teacher": F.normalize(
                torch.randn(n_data, d, generator=generator, dtype=dtype), dim=1
            ),
        }
