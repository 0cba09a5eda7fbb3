"""The arena: every loss, one shared recipe, several seeds, paired comparisons; resumable.

The shared recipe (:class:`Recipe`): SGD (momentum 0.9, Nesterov, weight decay 5e-4), lr 0.05 with
a cosine schedule over all steps, batch 32 (last partial batch dropped), 1-pixel random shifts,
fixed epochs; the teacher is trained once per task with the same recipe on the full training
split and cached on disk. Each run trains a fresh student (initialised from its seed) with
``task_weight * task_loss + factor * distillation`` through :class:`kdsurvey.distill.Distiller`,
the loss built at its authors' settings (its default preset, or the preset named after the task)
and the label weight and warm-up taken from the same preset; ``factor`` is 1 or a multiple of the
authors' weight tried by the sweep (:mod:`kdsurvey.arena.sweep`). Each run reports test accuracy
(classification) or mIoU (segmentation), and the same on the validation split.

A :class:`Task` bundles data, networks, taps and metric; the built-in ``classification`` and
``segmentation`` tasks use the digits data, and :func:`custom_task` wraps your own (see
``kdsurvey.arena.byo``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.arena import data, models, recipe, sweep
from kdsurvey.arena.summary import summarise
from kdsurvey.distill import Distiller

SCHEMA = 1
CACHE = Path(os.environ.get("KDSURVEY_CACHE", Path.home() / ".cache" / "kdsurvey")) / "arena"


@dataclass(frozen=True)
class Recipe:
    """The one training recipe every loss gets."""

    epochs: int = 30  # classification student
    dense_epochs: int = 20  # segmentation student
    teacher_epochs: int = 30
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    shift: int = 1
    threads: int = 1


@dataclass
class Task:
    """Data, networks, taps and metric of one comparison."""

    name: str
    split: data.Split
    make_teacher: Callable[[], nn.Module]
    make_student: Callable[[], nn.Module]
    student_taps: Sequence[str]
    teacher_taps: Sequence[str]
    metric: Callable[[Tensor, Tensor], float]  # (outputs, targets) -> score in [0, 1]
    metric_name: str = "accuracy"
    dense: bool = False
    teacher_key: str = ""  # identifies the teacher config in the cache
    teacher: nn.Module | None = None  # a trained teacher (skips training and caching)
    shift_fill: int = 0
    feat_tap: int = -1  # which tap feeds feat_student/feat_teacher
    extra: dict = field(default_factory=dict)


def accuracy(out: Tensor, y: Tensor) -> float:
    return float((out.argmax(1) == y).float().mean())


def miou(out: Tensor, y: Tensor, classes: int = data.SEG_CLASSES, ignore: int = 255) -> float:
    pred = out.argmax(1)
    keep = y != ignore
    pred, y = pred[keep], y[keep]
    conf = torch.bincount(y * classes + pred, minlength=classes * classes).reshape(classes, classes)
    inter = conf.diag().double()
    union = conf.sum(0).double() + conf.sum(1).double() - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


def classification_task() -> Task:
    return Task(
        "classification",
        data.digits(),
        lambda: models.ConvClassifier((16, 32, 64)),
        lambda: models.ConvClassifier((4, 8, 16)),
        models.ConvClassifier.taps,
        models.ConvClassifier.taps,
        accuracy,
        "accuracy",
        teacher_key="ConvClassifier(16,32,64)",
    )


def segmentation_task() -> Task:
    return Task(
        "segmentation",
        data.digit_scenes(),
        lambda: models.Segmenter((16, 32, 64)),
        lambda: models.Segmenter((8, 16, 32)),
        models.Segmenter.taps,
        models.Segmenter.taps,
        miou,
        "mIoU",
        dense=True,
        teacher_key="Segmenter(16,32,64)",
        shift_fill=data.BACKGROUND,
        feat_tap=1,  # enc3: the deepest encoder map, the "backbone feature" of the dense papers
    )


TASKS = {"classification": classification_task, "segmentation": segmentation_task}


# -- training ----------------------------------------------------------------------------------
def _batches(n: int, batch: int, g: torch.Generator):
    perm = torch.randperm(n, generator=g)
    for i in range(n // batch):
        yield perm[i * batch : (i + 1) * batch]


def _cosine(opt, total: int):
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total))
    )


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, metric, device, batch: int = 256) -> float:
    was = model.training
    model.eval()
    outs = [model(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)]
    model.train(was)
    return metric(torch.cat(outs), y)


def _optimiser(params, r: Recipe, steps: int):
    opt = torch.optim.SGD(
        params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay, nesterov=True
    )
    return opt, _cosine(opt, steps)


def train_teacher(task: Task, r: Recipe, seed: int = 0, device="cpu", cache: bool = True):
    """The task's teacher, trained with cross-entropy on the full training split (cached)."""
    if task.teacher is not None:
        return task.teacher.to(device).eval(), {"cached": "given"}
    key = json.dumps(
        {
            "task": task.name,
            "teacher": task.teacher_key,
            "seed": seed,
            "recipe": {k: v for k, v in asdict(r).items() if k not in ("epochs", "dense_epochs")},
            "torch": torch.__version__,
            "n": len(task.split.y_train),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = CACHE / f"teacher-{task.name}-{digest}.pt"
    teacher = task.make_teacher()
    if cache and task.teacher_key and path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        teacher.load_state_dict(blob["state"])
        return teacher.to(device).eval(), blob["info"]
    torch.manual_seed(seed)
    teacher = task.make_teacher().to(device)
    s = task.split
    g = torch.Generator().manual_seed(seed)
    steps = r.teacher_epochs * (len(s.y_train) // r.batch_size)
    opt, sched = _optimiser(teacher.parameters(), r, steps)
    start = time.perf_counter()
    for _ in range(r.teacher_epochs):
        for idx in _batches(len(s.y_train), r.batch_size, g):
            x, y = data.random_shift(s.x_train[idx], s.y_train[idx], g, r.shift, task.shift_fill)
            loss = F.cross_entropy(teacher(x.to(device)), y.to(device), ignore_index=255)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    info = {
        "metric": evaluate(teacher, s.x_test, s.y_test, task.metric, device),
        "train_time_s": round(time.perf_counter() - start, 2),
    }
    if cache and task.teacher_key:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"state": teacher.state_dict(), "info": info, "key": key}, tmp)
        os.replace(tmp, path)
    return teacher.eval(), info


class _TaskOnly(nn.Module):
    """The baseline's stand-in for a Distiller: cross-entropy only."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student
        self.epoch = None

    def forward(self, x, y, **_):
        from kdsurvey.distill import DistillOutput

        out = self.student(x)
        task = F.cross_entropy(out, y, ignore_index=255)
        zero = task.new_zeros(())
        return DistillOutput(out, task, task.detach(), zero, {"task": task.item(), "distill": 0.0})

    def remove_hooks(self):
        pass


class Diverged(FloatingPointError):
    """The loss went non-finite: recorded as a diverged run, with where and at which weight."""


def run_one(
    task: Task,
    loss: str,
    seed: int,
    r: Recipe,
    teacher: nn.Module,
    device="cpu",
    max_steps: int | None = None,
    factor: float = 1.0,
) -> dict:
    """Train one student with ``loss`` (``"none"``: task loss only) at ``factor`` times its
    authors' weight; its result record."""
    torch.manual_seed(seed)
    student = task.make_student().to(device)
    s = task.split
    g = torch.Generator().manual_seed(10_000 + seed)
    if loss == recipe.BASELINE:  # the task-only student: same loop, no distillation term
        distiller = _TaskOnly(student)
        task_w, loss_w = 1.0, 0.0
    else:
        distiller = Distiller(
            teacher,
            student,
            loss,
            student_taps=task.student_taps,
            teacher_taps=task.teacher_taps,
            weight=factor,
            preset=recipe.preset_name(loss, task.name),
            feat_tap=task.feat_tap,
            loss_kwargs=recipe.loss_kwargs(loss, task.name, len(s.y_student)),
            providers=recipe.providers(loss, task.name, s),
        ).to(device)
        first = torch.arange(r.batch_size)
        distiller.setup(s.x_student[first].to(device), s.y_student[first].to(device), index=first)
        task_w = distiller.task_weight
        loss_w = float(getattr(distiller.loss, "loss_weight", 1.0))
    epochs = r.dense_epochs if task.dense else r.epochs
    steps_per_epoch = len(s.y_student) // r.batch_size
    total = epochs * steps_per_epoch
    opt, sched = _optimiser([p for p in distiller.parameters() if p.requires_grad], r, total)
    distiller.train()
    parts = {"task": 0.0, "distill": 0.0}
    step = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        distiller.epoch = epoch
        for idx in _batches(len(s.y_student), r.batch_size, g):
            x, y = data.random_shift(
                s.x_student[idx], s.y_student[idx], g, r.shift, task.shift_fill
            )
            out = distiller(x.to(device), y.to(device), index=idx)
            if not torch.isfinite(out.loss):
                raise Diverged(
                    f"non-finite loss at epoch {epoch + 1}, step {step + 1}, weight "
                    f"{loss_w * factor:g} (label weight {task_w:g}): {out.parts}"
                )
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            sched.step()
            parts = out.parts
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        if max_steps is not None and step >= max_steps:
            break
    elapsed = time.perf_counter() - start
    distiller.remove_hooks()
    val = None
    if s.x_val is not None:
        val = evaluate(student, s.x_val, s.y_val, task.metric, device)
    return {
        "task": task.name,
        "loss": loss,
        "seed": seed,
        "factor": factor,
        "status": "ok",
        "metric": evaluate(student, s.x_test, s.y_test, task.metric, device),
        "val_metric": val,
        "task_weight": task_w,
        "loss_weight": loss_w,
        "weight": loss_w * factor,
        "epochs": epochs,
        "steps": step,
        "time_s": round(elapsed, 3),
        "time_per_epoch_s": round(elapsed / max(1, epochs), 4),
        "adapter_params": sum(p.numel() for p in distiller.parameters())
        - sum(p.numel() for p in student.parameters()),
        "final_task_loss": parts["task"],
        "final_distill_loss": parts["distill"],
    }


# -- the arena ---------------------------------------------------------------------------------
def groups(losses: Sequence[str], tasks: Sequence[str]) -> list[tuple[str, str]]:
    """Every (task, loss) comparison, in a fixed order: loss by loss (baseline and kd first), so
    an interrupted arena has complete comparisons for the losses it reached."""
    return [(t, n) for n in losses for t in tasks if t in recipe.home_tasks(n)]


def jobs(
    losses: Sequence[str],
    tasks: Sequence[str],
    seeds: Sequence[int],
    factors: Sequence[float] = sweep.FACTORS,
) -> list[tuple]:
    """The ``(task, loss, seed, factor)`` runs known before any result: every seed at the
    authors' settings and the sweep's other factors on its seeds (:func:`sweep.first_runs`)."""
    return [j for t, n in groups(losses, tasks) for j in sweep.first_runs(t, n, seeds, factors)]


def plan(
    losses: Sequence[str],
    tasks: Sequence[str],
    seeds: Sequence[int],
    factors: Sequence[float] = sweep.FACTORS,
) -> dict:
    """The whole arena's size: the runs known in advance, at most how many the sweep's choices
    add, and the losses that run or cannot."""
    placed = [
        n for n in losses if n != recipe.BASELINE and any(t in recipe.home_tasks(n) for t in tasks)
    ]
    seeds = list(seeds)
    later = len([s for s in seeds if s not in sweep.SEEDS]) if len(factors) > 1 else 0
    return {
        "runs": len(jobs(losses, tasks, seeds, factors)),
        "runs_after_sweep_max": later * sum(n != recipe.BASELINE for _, n in groups(losses, tasks)),
        "losses": len(placed),
        "not_fitting": len(not_fitting(losses)),
        "tasks": list(tasks),
        "seeds": len(seeds),
    }


def shard(items: list, spec: str | None) -> list:
    """The ``K/N`` slice (1-based ``K``): every ``N``-th item starting at item ``K`` (the arena
    shards whole comparisons, so that a loss's sweep and its chosen runs stay in one shard)."""
    if not spec:
        return items
    k, n = (int(v) for v in spec.split("/"))
    if not 1 <= k <= n:
        raise ValueError(f"--shard {spec}: need 1 <= K <= N")
    return items[k - 1 :: n]


def versions() -> dict:
    import sklearn

    return {
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
    }


def write_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def not_fitting(losses: Sequence[str]) -> dict[str, str]:
    """The losses of ``losses`` that run on neither task, with the reason."""
    reasons = {n: recipe.why_not_fitting(n) for n in losses if n != recipe.BASELINE}
    return {n: why for n, why in reasons.items() if why}


def run_arena(
    losses: Sequence[str] | None = None,
    tasks: Sequence[str] = ("classification", "segmentation"),
    seeds: Sequence[int] = range(5),
    r: Recipe = Recipe(),
    out: str | Path | None = None,
    device: str = "cpu",
    shard_spec: str | None = None,
    progress: bool = True,
    task_objects: dict[str, Task] | None = None,
    after_run: Callable[[dict], None] | None = None,
    max_steps: int | None = None,
    command: str | None = None,
    factors: Sequence[float] = sweep.FACTORS,
) -> dict:
    """Run (or resume) the arena; write ``out`` after every run; return the results.

    Each comparison runs its authors' settings and the sweep's factors first, then the chosen
    factor on the other seeds (:mod:`kdsurvey.arena.sweep`); a task without a validation split
    runs the authors' settings only. The file also records the ``command`` that produced it and
    the ``plan`` (all shards together), so readers can say how complete it is."""
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(r.threads)
    try:
        given = list(losses or recipe.all_jobs_losses())
        # the references every comparison needs run first
        losses = [recipe.BASELINE, "kd"] + [n for n in given if n not in (recipe.BASELINE, "kd")]
        seeds = list(seeds)
        factors = [float(f) for f in factors]
        config = {
            "recipe": asdict(r),
            "device": device,
            "max_steps": max_steps,
            "sweep": {"factors": factors, "seeds": list(sweep.SEEDS)},
        }
        results = {
            "schema": SCHEMA,
            "config": config,
            "versions": versions(),
            "runs": [],
            "teachers": {},
            "not_fitting": not_fitting(losses),
            "plan": plan(losses, tasks, seeds, factors),
            "command": command or "kdsurvey.arena.run_arena(...)",
        }
        path = Path(out) if out else None
        if path and path.exists():
            old = json.loads(path.read_text())
            if old.get("config") != config:
                raise ValueError(
                    f"{path} holds results of another configuration; use another --out"
                )
            results["runs"] = old["runs"]
            results["teachers"] = old.get("teachers", {})
        done = {(x["task"], x["loss"], x["seed"], sweep.factor(x)) for x in results["runs"]}
        comparisons = shard(groups(losses, tasks), shard_spec)
        objects = task_objects or {}
        built: dict[str, tuple[Task, nn.Module]] = {}
        bar = None
        if progress:
            from tqdm import tqdm

            first = [j for t, n in comparisons for j in sweep.first_runs(t, n, seeds, factors)]
            bar = tqdm(total=sum(j not in done for j in first), unit="run", dynamic_ncols=True)

        def execute(job: tuple) -> None:
            task_name, loss, seed, factor = job
            if task_name not in built:
                task = objects.get(task_name) or TASKS[task_name]()
                teacher, info = train_teacher(task, r, seed=0, device=device)
                built[task_name] = (task, teacher)
                results["teachers"][task_name] = info
            task, teacher = built[task_name]
            if bar is not None:
                bar.set_description(f"{task_name[:3]} {loss} s{seed} x{factor:g}")
            fields = {"task": task_name, "loss": loss, "seed": seed, "factor": factor}
            record_run(
                results,
                fields,
                partial(run_one, task, loss, seed, r, teacher, device, max_steps, factor),
                summarise,
                path,
                bar,
                after_run,
            )
            done.add(job)

        for task_name, loss in comparisons:
            split = (objects.get(task_name) or TASKS[task_name]()).split
            swept = factors if split.x_val is not None else [1.0]
            for job in sweep.first_runs(task_name, loss, seeds, swept):
                if job not in done:
                    execute(job)
            later = sweep.later_runs(results["runs"], task_name, loss, seeds, swept)
            later = [j for j in later if j not in done]
            if bar is not None:
                bar.total += len(later)
            for job in later:
                execute(job)
        if bar is not None:
            bar.close()
        results["summary"] = summarise(results["runs"])
        if path:
            write_atomic(path, results)
        return results
    finally:
        torch.set_num_threads(threads)


def record_run(
    results: dict,
    fields: dict,
    train: Callable[[], dict],
    summary: Callable[[list[dict]], dict],
    path: Path | None,
    bar=None,
    after_run: Callable[[dict], None] | None = None,
) -> dict:
    """Run ``train()`` and add its record to ``results`` (a failure too: ``fields`` and the
    reason, status ``diverged`` for :class:`Diverged`, else ``error``; never dropped), summarise,
    write the file, tick the progress bar. Both arena tracks record their runs here."""
    try:
        rec = train()
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - recorded, never skipped silently
        status = "diverged" if isinstance(e, Diverged) else "error"
        rec = {**fields, "status": status, "error": f"{type(e).__name__}: {e}"[:500]}
    results["runs"].append(rec)
    results["summary"] = summary(results["runs"])
    if path:
        write_atomic(path, results)
    if bar is not None:
        bar.update(1)
    if after_run is not None:
        after_run(rec)
    return rec


def _run_key(run: dict) -> tuple:
    """A run of the image tasks: task, loss, sweep factor (the authors' first), seed."""
    return (run["task"], run["loss"], -sweep.factor(run), run["seed"])


def merge(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    key: Callable[[dict], tuple] = _run_key,
    summary: Callable[[list[dict]], dict] = summarise,
) -> dict:
    """Join results files of the same configuration (e.g. shards); later files win on clashes.

    ``key`` names a run (and orders the joined runs), ``summary`` summarises them: the image
    tasks' by default; the language track passes its own (:func:`kdsurvey.arena.lm.merge`)."""
    merged: dict[str, Any] | None = None
    runs: dict[tuple, dict] = {}
    for p in paths:
        res = json.loads(Path(p).read_text())
        if merged is None:
            merged = {k: v for k, v in res.items() if k not in ("runs", "summary")}
        elif res["config"] != merged["config"]:
            raise ValueError(f"{p}: another configuration than {paths[0]}")
        for name in ("teachers", "not_fitting"):
            if name in res:
                merged.setdefault(name, {}).update(res[name])
        if res.get("plan", {}).get("runs", 0) > merged.get("plan", {}).get("runs", 0):
            merged["plan"] = res["plan"]  # the largest plan seen (shards share one)
        for x in res["runs"]:
            runs[key(x)] = x
    if merged is None:
        raise ValueError("nothing to merge")
    merged["runs"] = [runs[k] for k in sorted(runs)]
    merged["summary"] = summary(merged["runs"])
    if out:
        write_atomic(Path(out), merged)
    return merged
