"""Distil a causal language model with a token-level loss: Hugging Face conventions throughout.

:class:`LMDistiller` wraps a frozen teacher and a student causal LM (a ``transformers``
``*ForCausalLM``, or any module mapping ``input_ids`` to ``[B, T, V]`` logits) and one of the
token-level losses of :mod:`kdsurvey.losses` (``llm_forward_kl``, ``gkd_jsd``, ``uld``...). Per batch:

* **Label shift.** Position ``t`` of the logits predicts token ``t + 1``: the harness drops the
  last logit and the first label, so the loss receives aligned ``[B, T-1, V]`` logits and
  ``[B, T-1]`` targets (the losses never shift).
* **Masks.** ``labels`` follow Hugging Face: ``-100`` marks prompt and padding tokens, which count
  in neither the label term nor the distillation term. Without ``labels``, every attended token is
  a label (``attention_mask == 0`` -> ``-100``).
* **Temperature.** A loss's temperature is its own hyperparameter (its authors' value is its
  default; change it with ``loss_kwargs={"temperature": ...}``); sampling on-policy continuations
  uses ``sample_temperature``.
* **On-policy batches** (GKD, Agarwal et al., ICLR 2024: with probability ``lmbda`` a batch's
  responses are replaced by the student's own samples, which the teacher then scores), and
  **sequence-level replay** as in DistiLLM's adaptive off-policy (Ko et al., ICML 2024): each
  student-generated batch is kept in a buffer of ``replay`` batches and, with probability
  ``replay_prob``, reused instead of generating anew. Both probabilities are attributes, so a
  schedule (DistiLLM raises the student-generated share when the validation loss rises) can change
  them between steps.
* **Different vocabularies.** A cross-tokenizer loss (``uld``, ``dskd``) takes the teacher's own
  tokenisation: pass ``teacher_input_ids`` / ``teacher_attention_mask`` / ``teacher_labels``; the
  loss gets ``logits_teacher`` of the teacher's vocabulary and, when its ``forward`` declares it,
  ``target_teacher``.

The loss total is ``task_weight * CE(student, labels) + weight * distillation``, with the label
weight taken from the loss's preset (its authors' setting) unless given; a batch of the student's
own samples has no ground truth, so it carries the distillation term alone (as in GKD). ``transformers`` is not
needed by this module (it is the optional ``llm`` extra): the tests use tiny random GPT-2 and Llama
configurations built offline.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.distill.harness import DistillOutput
from kdsurvey.losses.base import Preset
from kdsurvey.losses.registry import get

IGNORE_INDEX = -100


def logits_of(output: Any) -> Tensor:
    """The ``[B, T, V]`` logits of a model's output (a tensor, or an object with ``.logits``)."""
    return output.logits if hasattr(output, "logits") else output


def labels_from(input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
    """Every attended token is a label; padding is ``-100``."""
    labels = input_ids.clone()
    if attention_mask is not None:
        labels[attention_mask == 0] = IGNORE_INDEX
    return labels


def prompt_lengths(labels: Tensor) -> Tensor:
    """Per row, the number of leading positions that are not labels (the prompt)."""
    is_label = labels != IGNORE_INDEX
    first = is_label.float().argmax(1)
    return torch.where(is_label.any(1), first, torch.full_like(first, labels.shape[1]))


@torch.no_grad()
def sample(
    model: nn.Module,
    input_ids: Tensor,
    prompt_len: Tensor,
    new_tokens: int,
    *,
    temperature: float = 1.0,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Continue each row's prompt (``input_ids[i, :prompt_len[i]]``) by ``new_tokens`` sampled
    tokens. Returns ``(input_ids, attention_mask, labels)`` of the prompts plus samples, right-padded
    with ``pad_token_id``; labels are the sampled tokens (``-100`` on prompt and padding). A row
    stops at ``eos_token_id`` (kept as a label). Rows may have prompts of different lengths (each at
    least one token, e.g. BOS): every step runs the whole causal sequence, so no cache is needed.
    """
    was = model.training
    model.eval()
    b = input_ids.shape[0]
    width = int(prompt_len.max()) + new_tokens
    ids = torch.full((b, width), pad_token_id, dtype=input_ids.dtype, device=input_ids.device)
    n = min(width, input_ids.shape[1])
    keep = torch.arange(n, device=ids.device)[None, :] < prompt_len[:, None]
    ids[:, :n][keep] = input_ids[:, :n][keep]
    length = prompt_len.clone()
    done = torch.zeros(b, dtype=torch.bool, device=ids.device)
    rows = torch.arange(b, device=ids.device)
    for _ in range(new_tokens):
        mask = (torch.arange(width, device=ids.device)[None, :] < length[:, None]).long()
        logits = logits_of(model(input_ids=ids, attention_mask=mask))
        last = logits[rows, (length - 1).clamp(min=0)].float() / temperature
        token = torch.multinomial(F.softmax(last, -1), 1, generator=generator).squeeze(1)
        live = ~done
        ids[rows[live], length[live]] = token[live].to(ids.dtype)
        length = length + live.long()
        if eos_token_id is not None:
            done |= live & (token == eos_token_id)
        if done.all():
            break
    model.train(was)
    span = torch.arange(width, device=ids.device)[None, :]
    mask = (span < length[:, None]).long()
    labels = ids.clone()
    labels[(span < prompt_len[:, None]) | (mask == 0)] = IGNORE_INDEX
    return ids, mask, labels


class LMDistiller(nn.Module):
    """Teacher LM + student LM + token-level loss; see the module docstring.

    Args:
        teacher: the frozen teacher (eval mode, ``requires_grad_(False)``).
        student: the causal LM being trained.
        loss: a registry name (built with ``preset`` and ``loss_kwargs``) or a built loss.
        weight: multiplies the distillation loss (on top of the loss's own ``loss_weight``).
        task_weight: weight of the label cross-entropy; ``None`` takes the preset's.
        preset: which of the loss's training settings to use (``None``: its default).
        loss_kwargs: constructor keyword arguments of the loss.
        lmbda: probability that a batch's responses are the student's own samples (GKD).
        max_new_tokens: length of sampled responses (default: the batch's response length).
        sample_temperature: sampling temperature of on-policy responses (GKD uses 1).
        replay: how many student-generated batches to keep for reuse (DistiLLM); 0: none.
        replay_prob: probability that an on-policy batch reuses a kept one instead.
        eos_token_id, pad_token_id: for sampling (``pad_token_id`` also pads sampled batches).
        seed: seeds the harness's own generator (on-policy coin flips and samples).
    """

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        loss: str | nn.Module,
        *,
        weight: float = 1.0,
        task_weight: float | None = None,
        preset: str | None = None,
        loss_kwargs: Mapping[str, Any] | None = None,
        lmbda: float = 0.0,
        max_new_tokens: int | None = None,
        sample_temperature: float = 1.0,
        replay: int = 0,
        replay_prob: float = 0.0,
        eos_token_id: int | None = None,
        pad_token_id: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.student = student
        # kept out of the module tree: parameters() and state_dict() are the student's and loss's
        object.__setattr__(self, "teacher", teacher.eval().requires_grad_(False))
        cls = get(loss) if isinstance(loss, str) else type(loss)
        self.preset: Preset = cls.preset(preset) if hasattr(cls, "preset") else Preset("")
        if isinstance(loss, str):
            loss = cls(**{**self.preset.kwargs, **dict(loss_kwargs or {})})
        self.loss = loss
        self.loss_name = getattr(loss, "name", type(loss).__name__)
        self.params = inspect.signature(type(loss).forward).parameters
        self.weight = float(weight)
        self.task_weight = float(self.preset.task_weight if task_weight is None else task_weight)
        self.lmbda, self.replay_prob = float(lmbda), float(replay_prob)
        self.max_new_tokens = max_new_tokens
        self.sample_temperature = sample_temperature
        self.replay = int(replay)
        self.buffer: list[tuple[Tensor, Tensor, Tensor]] = []
        self.eos_token_id, self.pad_token_id = eos_token_id, pad_token_id
        self.generator = torch.Generator().manual_seed(seed)
        self.last_source = "data"  # where the last batch's responses came from

    def train(self, mode: bool = True) -> LMDistiller:
        super().train(mode)
        self.teacher.eval()  # always frozen
        return self

    def _apply(self, fn, recurse=True):  # .to(device) reaches the teacher too
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    def _coin(self, p: float) -> bool:
        return p > 0 and float(torch.rand((), generator=self.generator)) < p

    def on_policy(
        self, input_ids: Tensor, labels: Tensor, prompt: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor] | None:
        """The batch with student-sampled responses (or a replayed earlier one), or ``None`` when
        this batch stays off-policy (probability ``1 - lmbda``). The prompts are ``prompt``
        tokens long, by default the positions before each row's first label."""
        if not self._coin(self.lmbda):
            return None
        if self.buffer and self._coin(self.replay_prob):
            self.last_source = "replay"
            pick = int(torch.randint(len(self.buffer), (), generator=self.generator))
            return self.buffer[pick]
        if prompt is None:
            prompt = prompt_lengths(labels)
        new = self.max_new_tokens or int((labels != IGNORE_INDEX).sum(1).max())
        batch = sample(
            self.student,
            input_ids,
            prompt,
            max(new, 1),
            temperature=self.sample_temperature,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            generator=self.generator,
        )
        if self.replay:
            self.buffer = [*self.buffer, batch][-self.replay :]
        self.last_source = "student"
        return batch

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        teacher_input_ids: Tensor | None = None,
        teacher_attention_mask: Tensor | None = None,
        teacher_labels: Tensor | None = None,
        prompt_lengths: Tensor | None = None,
    ) -> DistillOutput:
        """One step's losses; ``out.loss`` is what to minimise. ``prompt_lengths`` (per row)
        sets where on-policy responses start when the labels do not mark the prompt."""
        if labels is None:
            labels = labels_from(input_ids, attention_mask)
        self.last_source = "data"
        if self.training and teacher_input_ids is None:
            swapped = self.on_policy(input_ids, labels, prompt_lengths)
            if swapped is not None:
                input_ids, attention_mask, labels = swapped
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if teacher_input_ids is None:
            teacher_input_ids, teacher_attention_mask = input_ids, attention_mask
            teacher_labels = labels
        elif teacher_labels is None:
            teacher_labels = labels_from(teacher_input_ids, teacher_attention_mask)
        if teacher_attention_mask is None:
            teacher_attention_mask = torch.ones_like(teacher_input_ids)
        with torch.no_grad():
            logits_t = logits_of(
                self.teacher(input_ids=teacher_input_ids, attention_mask=teacher_attention_mask)
            )
        logits_s = logits_of(self.student(input_ids=input_ids, attention_mask=attention_mask))
        student, target = logits_s[:, :-1], labels[:, 1:]
        inputs = {
            "logits_student": student,
            "logits_teacher": logits_t[:, :-1],
            "target": target,
            "target_teacher": teacher_labels[:, 1:],
        }
        missing = [
            k
            for k, p in self.params.items()
            if k != "self" and k not in inputs and p.default is inspect.Parameter.empty
        ]
        if missing:
            raise TypeError(
                f"loss {self.loss_name!r} needs {', '.join(missing)}, which LMDistiller does not "
                "derive; call the loss directly"
            )
        distill = self.loss(**{k: v for k, v in inputs.items() if k in self.params})
        if self.task_weight and self.last_source == "data":
            task = F.cross_entropy(
                student.reshape(-1, student.shape[-1]).float(),
                target.reshape(-1),
                ignore_index=IGNORE_INDEX,
            )
        else:
            task = distill.new_zeros(())
        total = self.task_weight * task + self.weight * distill
        return DistillOutput(
            logits_s,
            total,
            task.detach(),
            distill.detach(),
            {"task": task.item(), "distill": distill.item(), "total": total.item()},
        )
