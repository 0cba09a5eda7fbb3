"""Kullback-Leibler divergences between class distributions, and DKD's decoupled split.

One name, one meaning: every function returns per-position divergences (no reduction
over the batch) of KL(teacher || student), the direction every loss here uses. ``gt_mask``,
``decoupled_log_probs`` and ``dkd_rows`` are the DKD decomposition that DKD, LSKD, NormKD and SDD
share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_from_log_probs(log_p_s: Tensor, log_p_t: Tensor, dim: int = 1) -> Tensor:
    """``KL(p_t || p_s)`` summed along ``dim`` (the classes), from log-probabilities."""
    return F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(dim)


def kl_of_logits(z_s: Tensor, z_t: Tensor, temperature: float = 1.0, dim: int = 1) -> Tensor:
    """``KL(softmax(z_t / T) || softmax(z_s / T))`` along ``dim``, from logits."""
    log_p_s = F.log_softmax(z_s / temperature, dim=dim)
    return kl_from_log_probs(log_p_s, F.log_softmax(z_t / temperature, dim=dim), dim)


def gt_mask(logits: Tensor, target: Tensor) -> Tensor:
    """Boolean ``(B, C)`` mask of the ground-truth class of each row."""
    return F.one_hot(target.reshape(-1), logits.shape[1]).bool()


def decoupled_log_probs(z: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """DKD's two distributions of temperature-scaled logits ``z``, as log-probabilities.

    Returns the binary ``(target, rest)`` log-probabilities ``(B, 2)`` and the log-softmax over the
    non-target classes ``(B, C)``. The target class is pushed out by subtracting 1000 from its
    logit, as every official DKD-family implementation does: its probability underflows to exactly
    0 in float32/float64, so this equals renormalising over the other classes. Two log-sum-exp
    passes serve both distributions (mdistiller needs four softmax passes).
    """
    z_rest = z - 1000.0 * gt.to(z.dtype)
    lse = torch.logsumexp(z, dim=1, keepdim=True)
    lse_rest = torch.logsumexp(z_rest, dim=1, keepdim=True)
    log_target = (z * gt).sum(1, keepdim=True) - lse
    return torch.cat([log_target, lse_rest - lse], dim=1), z_rest - lse_rest


def dkd_rows(z_s: Tensor, z_t: Tensor, target: Tensor, alpha: float, beta: float) -> Tensor:
    """Per-row ``alpha * TCKD + beta * NCKD`` of temperature-scaled logits (no ``T^2``).

    TCKD is the KL between the binary (target, rest) distributions, NCKD the KL over the
    non-target classes.
    """
    gt = gt_mask(z_s, target)
    binary_s, rest_s = decoupled_log_probs(z_s, gt)
    binary_t, rest_t = decoupled_log_probs(z_t, gt)
    return alpha * kl_from_log_probs(binary_s, binary_t) + beta * kl_from_log_probs(rest_s, rest_t)


def kl_to_probs(logits_student: Tensor, prob_teacher: Tensor, temperature: float) -> Tensor:
    """``KL(p_t || softmax(z_s / T))`` summed over classes (dim 1), with ``p_t`` given as
    probabilities (an average of several teachers, for instance)."""
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    return F.kl_div(log_p_s, prob_teacher, reduction="none").sum(1)
