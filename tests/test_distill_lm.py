"""LMDistiller: label shift, masks, frozen teacher, on-policy samples and replay, different
vocabularies, on tiny randomly initialised GPT-2 and Llama models built offline (no download)."""

from __future__ import annotations

import pytest
from conftest import require

torch = require("torch")
transformers = require("transformers", "pip install .[llm]")

from torch import nn  # noqa: E402

from kdsurvey.distill import LMDistiller  # noqa: E402
from kdsurvey.distill.lm import IGNORE_INDEX, prompt_lengths, sample  # noqa: E402


def gpt2(vocab=300, width=32, layers=2, seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=64, n_embd=width, n_layer=layers, n_head=2,
        bos_token_id=0, eos_token_id=1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


def llama(vocab=300, width=32, layers=2, seed=0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=width, intermediate_size=2 * width,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config)


class Recorder(nn.Module):
    """A loss that remembers what it was given and returns a differentiable KL-like value."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def forward(self, logits_student, logits_teacher, target, target_teacher=None):
        self.seen = {
            "logits_student": logits_student,
            "logits_teacher": logits_teacher,
            "target": target,
            "target_teacher": target_teacher,
        }
        mask = target != IGNORE_INDEX
        return logits_student[mask].pow(2).mean()


def batch(vocab=300, prompt=(3, 5), length=10, pad=(0, 2)):
    """Two rows: BOS-led prompts of the given lengths, responses, right padding."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (2, length), generator=g)
    ids[:, 0] = 0
    mask = torch.ones_like(ids)
    labels = ids.clone()
    for i, (p, n) in enumerate(zip(prompt, pad, strict=True)):
        labels[i, :p] = IGNORE_INDEX
        if n:
            mask[i, -n:] = 0
            labels[i, -n:] = IGNORE_INDEX
            ids[i, -n:] = 2
    return ids, mask, labels


@pytest.mark.parametrize("make", [gpt2, llama])
def test_label_shift_and_masks(make):
    teacher, student = make(width=48, seed=1), make(seed=2)
    loss = Recorder()
    d = LMDistiller(teacher, student, loss, task_weight=1.0)
    ids, mask, labels = batch()
    out = d(ids, mask, labels)
    seen = loss.seen
    full_s = student(input_ids=ids, attention_mask=mask).logits
    full_t = teacher(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(seen["logits_student"], full_s[:, :-1])
    torch.testing.assert_close(seen["logits_teacher"], full_t[:, :-1])
    assert torch.equal(seen["target"], labels[:, 1:])  # position t predicts token t + 1
    assert not seen["logits_teacher"].requires_grad  # the teacher is frozen
    ce = nn.functional.cross_entropy(
        full_s[:, :-1].reshape(-1, 300), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )
    assert out.task_loss.item() == pytest.approx(ce.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(ce.item() + out.distill_loss.item(), rel=1e-5)
    out.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert {id(p) for p in d.parameters()} == {id(p) for p in student.parameters()}


def test_labels_default_to_attended_tokens():
    loss = Recorder()
    d = LMDistiller(gpt2(seed=1), gpt2(seed=2), loss)
    ids, mask, _ = batch()
    d(ids, mask)
    want = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
    assert torch.equal(loss.seen["target"], want)


def test_training_lowers_the_distillation_loss():
    teacher, student = gpt2(width=48, seed=1), gpt2(seed=2)
    d = LMDistiller(teacher, student, Recorder(), task_weight=0.0)
    assert d.task_weight == 0.0
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    ids, mask, labels = batch()
    first = None
    for _ in range(15):
        out = d(ids, mask, labels)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = out.distill_loss.item() if first is None else first
    assert out.distill_loss.item() < first


def test_on_policy_batches_are_student_samples_scored_by_the_teacher():
    teacher, student = gpt2(width=48, seed=1), gpt2(seed=2)
    loss = Recorder()
    d = LMDistiller(teacher, student, loss, lmbda=1.0, max_new_tokens=4, seed=3)
    ids, mask, labels = batch()
    d.train()
    d(ids, mask, labels)
    assert d.last_source == "student"
    target = loss.seen["target"]
    prompt = prompt_lengths(labels)
    for i in range(2):
        labelled = (target[i] != IGNORE_INDEX).nonzero().flatten()
        # the prompt is kept and not a label; the four sampled tokens are the labels
        assert labelled.tolist() == list(range(prompt[i] - 1, prompt[i] - 1 + 4))
    # the same seed samples the same continuation; the teacher scored exactly those tokens
    again, mask2, labels2 = sample(
        student, ids, prompt, 4, generator=torch.Generator().manual_seed(3).manual_seed(3)
    )
    assert again.shape[1] == int(prompt.max()) + 4
    t_logits = teacher(input_ids=again, attention_mask=mask2).logits[:, :-1]
    assert loss.seen["logits_teacher"].shape == t_logits.shape
    d.eval()
    d(ids, mask, labels)
    assert d.last_source == "data"  # evaluation never samples


def test_off_policy_when_lmbda_is_zero_and_replay_reuses_samples():
    d = LMDistiller(gpt2(seed=1), gpt2(seed=2), Recorder(), lmbda=0.0)
    ids, mask, labels = batch()
    d(ids, mask, labels)
    assert d.last_source == "data"
    loss = Recorder()
    d = LMDistiller(
        gpt2(seed=1), gpt2(seed=2), loss, lmbda=1.0, replay=2, replay_prob=1.0, max_new_tokens=3
    )
    d(ids, mask, labels)
    assert d.last_source == "student" and len(d.buffer) == 1
    first = loss.seen["target"].clone()
    d(ids, mask, labels)
    assert d.last_source == "replay"
    assert torch.equal(loss.seen["target"], first)  # the kept batch, reused


class Always(nn.Module):
    """A "language model" that always predicts ``token`` (plain logits, no ``.logits``)."""

    def __init__(self, token, vocab=300):
        super().__init__()
        self.token, self.vocab = token, vocab

    def forward(self, input_ids, attention_mask=None):
        out = torch.zeros(*input_ids.shape, self.vocab)
        out[..., self.token] = 100.0
        return out


def test_sampling_stops_at_eos_and_pads():
    ids, _, labels = batch()
    prompt = prompt_lengths(labels)
    out, mask, lab = sample(Always(1), ids, prompt, 5, eos_token_id=1, pad_token_id=2)
    for i in range(2):
        assert mask[i].sum() == prompt[i] + 1  # one sampled token, the EOS
        assert out[i, prompt[i]] == 1 and lab[i, prompt[i]] == 1
        assert (out[i, prompt[i] + 1 :] == 2).all() and (lab[i, prompt[i] + 1 :] == -100).all()
        assert torch.equal(out[i, : prompt[i]], ids[i, : prompt[i]])  # the prompt is kept
    out, mask, _ = sample(Always(7), ids, prompt, 5, eos_token_id=1)
    assert (mask.sum(1) == prompt + 5).all() and (out[0, 3:8] == 7).all()


def test_different_vocabularies_reach_the_loss():
    teacher, student = llama(vocab=400, width=48, seed=1), gpt2(vocab=300, seed=2)
    loss = Recorder()
    d = LMDistiller(teacher, student, loss)
    ids, mask, labels = batch(vocab=300)
    t_ids, t_mask, t_labels = batch(vocab=400, length=12, prompt=(4, 6))
    d(ids, mask, labels, teacher_input_ids=t_ids, teacher_attention_mask=t_mask,
      teacher_labels=t_labels)  # fmt: skip
    assert loss.seen["logits_student"].shape == (2, 9, 300)
    assert loss.seen["logits_teacher"].shape == (2, 11, 400)
    assert torch.equal(loss.seen["target_teacher"], t_labels[:, 1:])
    # the registered cross-vocabulary loss trains through the same call
    d = LMDistiller(teacher, student, "uld")
    out = d(ids, mask, labels, teacher_input_ids=t_ids, teacher_attention_mask=t_mask,
            teacher_labels=t_labels)  # fmt: skip
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_a_loss_input_the_harness_cannot_derive_is_named():
    class NeedsRejected(nn.Module):
        def forward(self, logits_student, logits_teacher, logits_student_rejected):
            return logits_student.sum()

    d = LMDistiller(gpt2(seed=1), gpt2(seed=2), NeedsRejected())
    ids, mask, labels = batch()
    with pytest.raises(TypeError, match="logits_student_rejected"):
        d(ids, mask, labels)
