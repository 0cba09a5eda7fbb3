"""The language track of the arena: the synthetic language's exact distribution, the metrics
against it, and the runs (schema, resume, shards) on a reduced recipe."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from conftest import require

torch = require("torch")
require("scipy")
require("tqdm")
require("sklearn")

from torch import nn  # noqa: E402

from kdsurvey.arena import language as lang  # noqa: E402
from kdsurvey.arena import lm  # noqa: E402

R = lm.LMRecipe(
    teacher_width=16, student_width=8, teacher_sentences=64, student_sentences=32,
    test_sentences=16, samples=8, teacher_steps=3, steps=3, batch_size=8, response=4,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setattr(lm, "CACHE", tmp_path / "cache")


def test_every_next_token_distribution_is_a_distribution_with_full_support():
    tokens = lang.sample(50, seed=3)
    p = lang.next_token_probs(tokens)
    assert p.shape == (50, lang.MAX_LEN, lang.VOCAB)
    torch.testing.assert_close(p.sum(-1), torch.ones(50, lang.MAX_LEN, dtype=torch.float64))
    assert (p > 0).all()  # the noise: both KL divergences to a model are finite


def test_sampling_follows_the_distribution_it_reports():
    tokens = lang.sample(4000, seed=4)
    first = torch.bincount(tokens[:, 1], minlength=lang.VOCAB).double() / len(tokens)
    want = torch.from_numpy(lang.probs(lang.State()))
    assert (first - want).abs().max() < 0.02  # 4,000 draws: a few standard errors


def test_brackets_close_in_order_and_copies_repeat_the_last_words():
    state = lang.State()
    for token in (lang.FIRST_WORD, lang.OPEN[1], lang.FIRST_WORD + 1, lang.OPEN[3]):
        lang.step(state, token)
    p = lang.probs(state)
    closers = [p[c] for c in lang.CLOSE]
    assert max(closers) == p[lang.CLOSE[3]] > 100 * p[lang.CLOSE[1]]  # the innermost first
    for token in (lang.CLOSE[3], lang.FIRST_WORD + 2, lang.COPY):
        lang.step(state, token)
    copied = []
    for _ in range(lang.SPAN):
        p = lang.probs(state)
        copied.append(int(p.argmax()))
        assert p.max() > 0.95
        lang.step(state, copied[-1])
    assert copied == [lang.FIRST_WORD, lang.FIRST_WORD + 1, lang.FIRST_WORD + 2]


class Oracle(nn.Module):
    """The language itself as a model: its exact log-probabilities."""

    def forward(self, input_ids, attention_mask=None):
        p = lang.next_token_probs(torch.cat([input_ids, input_ids[:, -1:]], 1))
        return p.log().float()


class Uniform(nn.Module):
    def forward(self, input_ids, attention_mask=None):
        return torch.zeros(*input_ids.shape, lang.VOCAB)


def test_metrics_are_exact_against_the_truth():
    d = lm.data(dataclasses.replace(R, test_sentences=40))
    oracle = lm.evaluate(Oracle(), d, R)
    assert oracle["fkl"] == pytest.approx(0.0, abs=1e-5)
    assert oracle["rkl"] == pytest.approx(0.0, abs=1e-5)
    assert oracle["nll"] == pytest.approx(float(lm._entropy_rate(d)), rel=1e-5)
    uniform = lm.evaluate(Uniform(), d, R)
    assert uniform["nll"] == pytest.approx(math.log(lang.VOCAB), rel=1e-6)
    assert uniform["fkl"] > oracle["fkl"] + 0.5 and uniform["rkl"] > oracle["rkl"] + 0.5
    # a uniform model's nucleus holds ~90% of the tokens: it covers most of the true mass, but its
    # samples are unlikely under the language (mean-seeking at its extreme)
    assert uniform["coverage"] > oracle["coverage"] - 0.05
    assert uniform["sample_nll"] > oracle["sample_nll"] + 1.0


def test_token_losses_are_found_by_their_shapes_and_inputs():
    names = lm.token_losses()
    assert lm.REFERENCE in names and "uld" in names  # one vocabulary is a case ULD allows
    assert "kd" not in names and "sdd_kd" not in names  # class logits, region logits
    missing = lm.not_fitting()
    assert "logits_student_rejected" in missing["distillm2"] and "distillm2" not in names
    assert set(missing) & set(names) == set()


def reduced(out, **kw):
    args = dict(losses=[lm.REFERENCE], seeds=[0], r=R, out=out, progress=False)
    args.update(kw)
    return lm.run(**args)


def test_runs_schema_resume_and_shards(tmp_path):
    res = reduced(tmp_path / "a.json", seeds=[0, 1])
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved == json.loads(json.dumps(res)) and saved["track"] == "language"
    keys = [(x["loss"], x["mode"], x["seed"]) for x in saved["runs"]]
    assert keys == [
        ("none", "off", 0), ("none", "off", 1), (lm.REFERENCE, "off", 0),
        (lm.REFERENCE, "off", 1), (lm.REFERENCE, "on", 0), (lm.REFERENCE, "on", 1),
    ]  # fmt: skip
    for run in saved["runs"]:
        assert run["status"] == "ok", run
        assert set(lm.METRICS) <= set(run) and run["steps"] == R.steps
    on = [x for x in saved["runs"] if x["mode"] == "on"]
    off = [x for x in saved["runs"] if x["mode"] == "off" and x["loss"] != "none"]
    assert all(x["on_policy_steps"] == 0 for x in off)
    assert sum(x["on_policy_steps"] for x in on) > 0  # lmbda 0.5 over 6 steps
    fkl = saved["summary"][f"{lm.REFERENCE}/on"]["fkl"]
    assert fkl["vs_student"]["n"] == 2 and fkl["vs_kd"]["n"] == 2
    # resume: nothing runs again
    seen = []
    reduced(tmp_path / "a.json", seeds=[0, 1], after_run=seen.append)
    assert seen == []
    # shards by comparison, merged: the same runs
    reduced(tmp_path / "s1.json", seeds=[0, 1], shard_spec="1/2")
    reduced(tmp_path / "s2.json", seeds=[0, 1], shard_spec="2/2")
    merged = lm.merge([tmp_path / "s1.json", tmp_path / "s2.json"])
    assert sorted((x["loss"], x["mode"], x["seed"]) for x in merged["runs"]) == sorted(keys)
    with pytest.raises(ValueError, match="another configuration"):
        reduced(tmp_path / "a.json", max_steps=2)


def test_the_cli_runs_the_language_track(tmp_path, monkeypatch, capsys):
    import argparse

    from kdsurvey.arena import cli

    orig = lm.run
    monkeypatch.setattr(lm, "run", lambda *a, **k: orig(*a[:1], a[1], R, *a[3:], **k))
    ap = argparse.ArgumentParser()
    cli.add_arguments(ap)
    out = tmp_path / "l.json"
    args = ["--task", "language", "--losses", lm.REFERENCE, "--seeds", "1", "--out", str(out)]
    assert cli.run(ap.parse_args([*args, "--no-progress"])) == 0
    assert f"{lm.REFERENCE}/on" in capsys.readouterr().out
    assert json.loads(out.read_text())["command"].startswith("kdsurvey arena --losses")
    assert cli.run(ap.parse_args(["merge", str(out), "--out", str(tmp_path / "m.json")])) == 0
    assert json.loads((tmp_path / "m.json").read_text())["track"] == "language"
    assert cli.run(ap.parse_args(["--task", "language", "--losses", "kd", "--out", str(out)])) == 2
    assert "not a token-level loss" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # without --out: its own default file, not the image arena's
    assert cli.run(ap.parse_args([*args[:4], "--seeds", "1", "--no-progress"])) == 0
    assert json.loads((tmp_path / "arena-lm.json").read_text())["track"] == "language"
    assert not (tmp_path / "arena.json").exists()
