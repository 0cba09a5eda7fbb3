"""The arena's language track: every token-level loss distils a small causal LM the same way.

A synthetic language with a known next-token distribution (:mod:`.language`) makes exact
metrics possible. A teacher (:class:`~kdsurvey.arena.models.TinyGPT`, sizes in
:class:`LMRecipe`) is trained on it once and cached: good, not perfect. Each run trains a student
about 4x smaller with :class:`kdsurvey.distill.LMDistiller` and one loss at its authors' settings,
in two modes: ``off`` (teacher-forced on the language's sentences) and ``on`` (GKD's on-policy
batches: with probability ``lmbda`` the student continues each sentence's first ``prompt`` tokens
itself for ``response`` tokens, and the teacher scores that). The plain student trains on the
sentences with cross-entropy alone.

Metrics, on held-out sentences of the language (teacher-forced) and on the student's own samples:

* ``nll``: the student's negative log-likelihood per token (nats; lower is better);
* ``fkl`` / ``rkl``: the exact KL(truth || student) and KL(student || truth) per position;
* ``coverage``: on the student's samples, the true probability of the tokens in the student's
  top-p (0.9) nucleus, averaged over positions: mean-seeking students cover more of the
  language's mass, mode-seeking ones less;
* ``sample_nll``: the true negative log-likelihood per token of the student's samples: how likely
  the language finds what the student writes (mode-seeking students score better here).

Results go to a JSON file after every run (resumable; ``K/N`` shards by loss, joined by
:func:`merge`), with mean ± std over seeds and paired differences against the plain student and
against ``llm_forward_kl``, with paired t-tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.arena import core
from kdsurvey.arena import language as lang
from kdsurvey.arena.core import CACHE, shard, versions, write_atomic
from kdsurvey.arena.models import TinyGPT
from kdsurvey.arena.sweep import BASELINE  # the student trained on the sentences alone
from kdsurvey.distill import LMDistiller

SCHEMA = 1
REFERENCE = "llm_forward_kl"  # the token-level "KD" every loss is also compared with
MODES = ("off", "on")
# metric -> True when higher is better
METRICS = {"nll": False, "fkl": False, "rkl": False, "coverage": True, "sample_nll": False}


@dataclass(frozen=True)
class LMRecipe:
    """The one recipe of the language track."""

    teacher_width: int = 64
    teacher_layers: int = 2
    student_width: int = 32
    student_layers: int = 2
    teacher_sentences: int = 3000
    student_sentences: int = 400  # the student sees fewer sentences than the teacher
    test_sentences: int = 300
    samples: int = 200  # student samples for coverage and sample_nll
    teacher_steps: int = 1500
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    prompt: int = 8  # tokens after BOS kept as the prompt of on-policy batches
    response: int = 16  # tokens the student samples after that prompt
    lmbda: float = 0.5  # share of on-policy batches in mode "on" (GKD's mixed setting)
    threads: int = 1


TOKEN_INPUTS = ("logits_student", "logits_teacher", "target")


def token_losses() -> list[str]:
    """The registered losses this track runs: language-model losses (``[B, T, V]`` logits,
    ``[B, T]`` targets; :func:`kdsurvey.arena.recipe.is_language`) whose ``forward`` needs
    nothing else. ``uld`` runs too: the track's models share a vocabulary, which it allows."""
    from kdsurvey.arena.recipe import is_language
    from kdsurvey.losses import available

    return [n for n in available() if is_language(n) and not _other_inputs(n)]


def not_fitting() -> dict[str, str]:
    """The language-model losses this track cannot run, with the inputs they need besides."""
    from kdsurvey.arena.recipe import is_language
    from kdsurvey.losses import available

    return {
        n: f"needs {', '.join(_other_inputs(n))} besides the logits and targets, which the "
        "track's training loop (kdsurvey.distill.LMDistiller) does not derive"
        for n in available()
        if is_language(n) and _other_inputs(n)
    }


def _other_inputs(name: str) -> list[str]:
    """The required ``forward`` inputs of a loss besides logits and targets."""
    import inspect

    from kdsurvey.losses import get

    params = inspect.signature(get(name).forward).parameters
    return [
        k
        for k, p in params.items()
        if k != "self" and k not in TOKEN_INPUTS and p.default is inspect.Parameter.empty
    ]


@dataclass
class Data:
    train: Tensor  # the teacher's sentences
    student: Tensor  # the student's (a prefix of the teacher's)
    test: Tensor  # held out
    test_probs: Tensor  # the exact next-token distributions of the held-out sentences


def data(r: LMRecipe) -> Data:
    train = lang.sample(r.teacher_sentences, seed=1)
    test = lang.sample(r.test_sentences, seed=2)
    return Data(train, train[: r.student_sentences], test, lang.next_token_probs(test))


def _batches(n: int, batch: int, steps: int, g: torch.Generator):
    order = torch.randperm(n, generator=g)
    i = 0
    for _ in range(steps):
        if i + batch > n:
            order, i = torch.randperm(n, generator=g), 0
        yield order[i : i + batch]
        i += batch


def _optimiser(params, r: LMRecipe, steps: int):
    opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    return opt, sched


def train_teacher(r: LMRecipe, d: Data, cache: bool = True) -> tuple[nn.Module, dict]:
    """The teacher, trained with cross-entropy on every training sentence (cached on disk)."""
    key = json.dumps({"recipe": asdict(r), "torch": torch.__version__, "lm": 1}, sort_keys=True)
    path = CACHE / f"teacher-lm-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    teacher = TinyGPT(lang.VOCAB, r.teacher_width, r.teacher_layers, 4, lang.MAX_LEN + 1)
    if cache and path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        teacher.load_state_dict(blob["state"])
        return teacher.eval(), blob["info"]
    torch.manual_seed(0)
    teacher = TinyGPT(lang.VOCAB, r.teacher_width, r.teacher_layers, 4, lang.MAX_LEN + 1)
    g = torch.Generator().manual_seed(0)
    opt, sched = _optimiser(teacher.parameters(), r, r.teacher_steps)
    labels = lang.labels(d.train)
    start = time.perf_counter()
    for idx in _batches(len(d.train), r.batch_size, r.teacher_steps, g):
        logits = teacher(d.train[idx])[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, lang.VOCAB), labels[idx, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    info = {**evaluate(teacher, d, r), "train_time_s": round(time.perf_counter() - start, 2)}
    if cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"state": teacher.state_dict(), "info": info}, tmp)
        os.replace(tmp, path)
    return teacher.eval(), info


@torch.no_grad()
def evaluate(model: nn.Module, d: Data, r: LMRecipe, seed: int = 0) -> dict[str, float]:
    """The five metrics of the module docstring for ``model``."""
    was = model.training
    model.eval()
    mask = lang.labels(d.test)[:, 1:] != -100
    logq = F.log_softmax(model(d.test)[:, :-1].double(), -1)
    p = d.test_probs
    target = d.test[:, 1:].unsqueeze(-1)
    nll = -logq.gather(-1, target).squeeze(-1)[mask].mean()
    logp = p.log()
    fkl = (p * (logp - logq)).sum(-1)[mask].mean()
    rkl = (logq.exp() * (logq - logp)).sum(-1)[mask].mean()
    # the student's own sentences, from BOS
    from kdsurvey.distill.lm import sample

    g = torch.Generator().manual_seed(10_000 + seed)
    start = torch.full((r.samples, 1), lang.BOS)
    ids, attn, labels = sample(
        model, start, torch.ones(r.samples, dtype=torch.long), lang.MAX_LEN,
        eos_token_id=lang.EOS, pad_token_id=lang.PAD, generator=g,
    )  # fmt: skip
    smask = labels[:, 1:] != -100
    truth = lang.next_token_probs(ids)
    q = F.softmax(model(ids)[:, :-1].double(), -1)
    ranked, order = q.sort(-1, descending=True)
    nucleus = (ranked.cumsum(-1) - ranked) < 0.9  # the top-p set, its first token always in
    covered = (truth.gather(-1, order) * nucleus).sum(-1)
    sample_nll = -truth.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1).log()
    model.train(was)
    return {
        "nll": float(nll),
        "fkl": float(fkl),
        "rkl": float(rkl),
        "coverage": float(covered[smask].mean()),
        "sample_nll": float(sample_nll[smask].mean()),
        "sample_length": float(smask.sum(1).float().mean()),
    }


def run_one(loss: str, mode: str, seed: int, r: LMRecipe, teacher: nn.Module, d: Data,
            max_steps: int | None = None) -> dict:  # fmt: skip
    """Train one student with ``loss`` (``"none"``: cross-entropy alone) in ``mode``."""
    torch.manual_seed(seed)
    student = TinyGPT(lang.VOCAB, r.student_width, r.student_layers, 2, lang.MAX_LEN + 1)
    if loss == BASELINE:
        distiller, task_w = None, 1.0
        params = list(student.parameters())
    else:
        distiller = LMDistiller(
            teacher, student, loss,
            lmbda=r.lmbda if mode == "on" else 0.0,
            max_new_tokens=r.response,
            eos_token_id=lang.EOS, pad_token_id=lang.PAD, seed=seed,
        )  # fmt: skip
        task_w = distiller.task_weight
        params = [p for p in distiller.parameters() if p.requires_grad]
    steps = max_steps or r.steps
    opt, sched = _optimiser(params, r, steps)
    labels = lang.labels(d.student)
    g = torch.Generator().manual_seed(20_000 + seed)
    parts = {"task": 0.0, "distill": 0.0}
    on_policy = 0
    start = time.perf_counter()
    for step, idx in enumerate(_batches(len(d.student), r.batch_size, steps, g)):
        ids, lab = d.student[idx], labels[idx]
        if distiller is None:
            logits = student(ids)[:, :-1]
            loss_value = F.cross_entropy(logits.reshape(-1, lang.VOCAB), lab[:, 1:].reshape(-1))
            parts = {"task": loss_value.item(), "distill": 0.0}
        else:
            prompt = torch.full((len(idx),), r.prompt + 1)  # BOS and the first tokens
            out = distiller(ids, None, lab, prompt_lengths=prompt)
            on_policy += distiller.last_source != "data"
            loss_value, parts = out.loss, out.parts
        if not torch.isfinite(loss_value):
            raise core.Diverged(f"non-finite loss at step {step + 1}: {parts}")
        opt.zero_grad()
        loss_value.backward()
        opt.step()
        sched.step()
    elapsed = time.perf_counter() - start
    return {
        "loss": loss,
        "mode": mode,
        "seed": seed,
        "status": "ok",
        **evaluate(student, d, r, seed),
        "task_weight": task_w,
        "steps": steps,
        "on_policy_steps": on_policy,
        "time_s": round(elapsed, 3),
        "final_task_loss": parts["task"],
        "final_distill_loss": parts["distill"],
    }


def comparisons(losses: Sequence[str]) -> list[tuple[str, str]]:
    """Every (loss, mode) to run: the plain student once (off), every loss in both modes."""
    out = [(BASELINE, "off")]
    return out + [(n, m) for n in losses if n != BASELINE for m in MODES]


def run(
    losses: Sequence[str] | None = None,
    seeds: Sequence[int] = range(3),
    r: LMRecipe = LMRecipe(),
    out: str | Path | None = None,
    shard_spec: str | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    command: str | None = None,
    after_run: Callable[[dict], None] | None = None,
) -> dict:
    """Run (or resume) the language track; write ``out`` after every run; return the results."""
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(r.threads)
    try:
        names = [REFERENCE] + [n for n in (losses or token_losses()) if n != REFERENCE]
        seeds = list(seeds)
        config = {"recipe": asdict(r), "max_steps": max_steps}
        plan = comparisons(names)
        results: dict[str, Any] = {
            "schema": SCHEMA,
            "track": "language",
            "config": config,
            "versions": versions(),
            "runs": [],
            "plan": {"runs": len(plan) * len(seeds), "losses": len(names), "seeds": len(seeds)},
            "not_fitting": not_fitting(),
            "command": command or "kdsurvey.arena.lm.run(...)",
        }
        path = Path(out) if out else None
        if path and path.exists():
            old = json.loads(path.read_text())
            if old.get("config") != config:
                raise ValueError(f"{path} holds results of another configuration")
            results["runs"] = old["runs"]
        done = {(x["loss"], x["mode"], x["seed"]) for x in results["runs"]}
        # shards take whole losses, both modes each, so that on-policy runs (the slow ones)
        # spread over the shards
        mine = set(shard([BASELINE, *names], shard_spec))
        todo = [(n, m, s) for n, m in plan if n in mine for s in seeds]
        todo = [j for j in todo if j not in done]
        d = data(r)
        teacher, info = train_teacher(r, d)
        results["teacher"] = info
        results["truth"] = {"nll": float(_entropy_rate(d))}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="run", dynamic_ncols=True)
        for loss, mode, seed in todo:
            if bar is not None:
                bar.set_description(f"{loss} {mode} s{seed}")
            core.record_run(
                results,
                {"loss": loss, "mode": mode, "seed": seed},
                partial(run_one, loss, mode, seed, r, teacher, d, max_steps),
                summarise,
                path,
                bar,
                after_run,
            )
        if bar is not None:
            bar.close()
        results["summary"] = summarise(results["runs"])
        if path:
            write_atomic(path, results)
        return results
    finally:
        torch.set_num_threads(threads)


def merge(paths: Sequence[str | Path], out: str | Path | None = None) -> dict:
    """Join language-track results of one configuration (e.g. shards); later files win."""
    return core.merge(
        paths, out, key=lambda x: (x["loss"], x["mode"], x["seed"]), summary=summarise
    )


def _entropy_rate(d: Data) -> Tensor:
    """The language's own NLL per token on the held-out sentences (the floor of ``nll``)."""
    mask = lang.labels(d.test)[:, 1:] != -100
    p = d.test_probs.gather(-1, d.test[:, 1:].unsqueeze(-1)).squeeze(-1)
    return -p.log()[mask].mean()


def summarise(runs: list[dict]) -> dict:
    """Per ``loss/mode``: each metric's mean ± std, and its paired difference (same seeds)
    against the plain student and against ``llm_forward_kl`` off-policy, with t-test p-values."""
    from scipy import stats

    by: dict[tuple[str, str], dict[int, dict]] = {}
    for x in runs:
        by.setdefault((x["loss"], x["mode"]), {})[x["seed"]] = x
    refs = {"student": (BASELINE, "off"), "kd": (REFERENCE, "off")}
    out: dict[str, dict] = {}
    for (loss, mode), seeds in sorted(by.items()):
        ok = {s: x for s, x in seeds.items() if x["status"] == "ok"}
        entry: dict[str, Any] = {"n": len(ok), "errors": len(seeds) - len(ok)}
        if len(ok) < len(seeds):
            entry["error"] = next(x["error"] for x in seeds.values() if x["status"] != "ok")
        for metric in METRICS:
            vals = [ok[s][metric] for s in sorted(ok)]
            if not vals:
                continue
            m: dict[str, Any] = {
                "mean": statistics.fmean(vals),
                "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            }
            for label, ref in refs.items():
                base = {s: x for s, x in by.get(ref, {}).items() if x["status"] == "ok"}
                common = sorted(set(ok) & set(base))
                if (loss, mode) == ref or not common:
                    continue
                a = [ok[s][metric] for s in common]
                b = [base[s][metric] for s in common]
                diffs = [u - v for u, v in zip(a, b, strict=True)]
                g = {"mean": statistics.fmean(diffs), "n": len(diffs)}
                if len(diffs) > 1 and any(x != diffs[0] for x in diffs):
                    g["p_ttest_rel"] = float(stats.ttest_rel(a, b).pvalue)
                m[f"vs_{label}"] = g
            entry[metric] = m
        out[f"{loss}/{mode}"] = entry
    return out
