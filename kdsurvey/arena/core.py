"""The arena: every loss, one shared recipe, several seeds, paired comparisons; resumable.

The shared recipe (:class:`Recipe`): SGD (momentum 0.9, Nesterov, weight decay 5e-4), lr 0.05 with
a cosine schedule over all steps, batch 32 (last partial batch dropped), 1-pixel random shifts,
fixed epochs; the teacher is trained once per task with the same recipe on the full training
split and cached on disk. Each run trains a fresh student (initialised from its seed) with
``task_weight * task_loss + weight * distillation`` through :class:`kdsurvey.distill.Distiller`
and reports test accuracy (classification) or mIoU (segmentation).

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
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.arena import data, models, recipe
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


def run_one(
    task: Task,
    loss: str,
    seed: int,
    r: Recipe,
    teacher: nn.Module,
    device="cpu",
    max_steps: int | None = None,
) -> dict:
    """Train one student with ``loss`` (``"none"``: task loss only); its result record."""
    torch.manual_seed(seed)
    student = task.make_student().to(device)
    s = task.split
    g = torch.Generator().manual_seed(10_000 + seed)
    task_w, w = recipe.weights(loss, task.name)
    if loss == recipe.BASELINE:  # the task-only student: same loop, no distillation term
        distiller = _TaskOnly(student)
    else:
        distiller = Distiller(
            teacher,
            student,
            loss,
            student_taps=task.student_taps,
            teacher_taps=task.teacher_taps,
            weight=w,
            task_weight=task_w,
            feat_tap=task.feat_tap,
            loss_kwargs=recipe.loss_kwargs(loss, task.name, len(s.y_student)),
            providers=recipe.providers(loss, task.name, s),
        ).to(device)
        first = torch.arange(r.batch_size)
        distiller.setup(s.x_student[first].to(device), s.y_student[first].to(device), index=first)
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
                raise FloatingPointError(f"non-finite loss at epoch {epoch}: {out.parts}")
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
    return {
        "task": task.name,
        "loss": loss,
        "seed": seed,
        "status": "ok",
        "metric": evaluate(student, s.x_test, s.y_test, task.metric, device),
        "task_weight": task_w,
        "weight": w,
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
def jobs(losses: Sequence[str], tasks: Sequence[str], seeds: Sequence[int]) -> list[tuple]:
    """Every (task, loss, seed) run, in a fixed order: loss by loss (baseline and kd first),
    so an interrupted arena has complete comparisons for the losses it reached."""
    out = []
    for loss in losses:
        for task in tasks:
            if task in recipe.home_tasks(loss):
                out.extend((task, loss, seed) for seed in seeds)
    return out


def plan(losses: Sequence[str], tasks: Sequence[str], seeds: Sequence[int]) -> dict:
    """The whole arena's size: planned runs, and the losses that run or cannot."""
    placed = [
        n for n in losses if n != recipe.BASELINE and any(t in recipe.home_tasks(n) for t in tasks)
    ]
    return {
        "runs": len(jobs(losses, tasks, list(seeds))),
        "losses": len(placed),
        "not_fitting": len(not_fitting(losses)),
        "tasks": list(tasks),
        "seeds": len(list(seeds)),
    }


def shard(items: list, spec: str | None) -> list:
    """The ``K/N`` slice (1-based ``K``): every ``N``-th item starting at item ``K``."""
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
    return {n: recipe.NOT_FITTING[n] for n in losses if n in recipe.NOT_FITTING}


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
) -> dict:
    """Run (or resume) the arena; write ``out`` after every run; return the results.

    The file also records the ``command`` that produced it and the ``plan`` (every run of the
    whole arena, all shards together), so readers can say how complete it is."""
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(r.threads)
    try:
        given = list(losses or recipe.all_jobs_losses())
        # the references every comparison needs run first
        losses = [recipe.BASELINE, "kd"] + [n for n in given if n not in (recipe.BASELINE, "kd")]
        config = {"recipe": asdict(r), "device": device, "max_steps": max_steps}
        results = {
            "schema": SCHEMA,
            "config": config,
            "versions": versions(),
            "runs": [],
            "teachers": {},
            "not_fitting": not_fitting(losses),
            "plan": plan(losses, tasks, seeds),
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
        done = {(x["task"], x["loss"], x["seed"]) for x in results["runs"]}
        todo = [j for j in shard(jobs(losses, tasks, list(seeds)), shard_spec) if j not in done]
        objects = task_objects or {}
        built: dict[str, tuple[Task, nn.Module]] = {}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="run", dynamic_ncols=True)
        for task_name, loss, seed in todo:
            if task_name not in built:
                task = objects.get(task_name) or TASKS[task_name]()
                teacher, info = train_teacher(task, r, seed=0, device=device)
                built[task_name] = (task, teacher)
                results["teachers"][task_name] = info
            task, teacher = built[task_name]
            if bar is not None:
                bar.set_description(f"{task_name[:3]} {loss} s{seed}")
            try:
                rec = run_one(task, loss, seed, r, teacher, device, max_steps=max_steps)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - recorded, never skipped silently
                rec = {
                    "task": task_name,
                    "loss": loss,
                    "seed": seed,
                    "status": "error",
                    "error": f"{type(e).__name__}: {e}"[:500],
                }
            results["runs"].append(rec)
            results["summary"] = summarise(results["runs"])
            if path:
                write_atomic(path, results)
            if bar is not None:
                bar.update(1)
            if after_run is not None:
                after_run(rec)
        if bar is not None:
            bar.close()
        results["summary"] = summarise(results["runs"])
        if path:
            write_atomic(path, results)
        return results
    finally:
        torch.set_num_threads(threads)


def summarise(runs: list[dict]) -> dict:
    """Per task and loss: mean ± std metric, paired gains over the baseline and plain KD."""
    import statistics

    from scipy import stats

    by: dict[tuple, dict[int, dict]] = {}
    for x in runs:
        by.setdefault((x["task"], x["loss"]), {})[x["seed"]] = x
    out: dict[str, dict] = {}
    for (task, loss), seeds in sorted(by.items()):
        ok = {s: x for s, x in seeds.items() if x["status"] == "ok"}
        entry: dict[str, Any] = {"n": len(ok), "errors": len(seeds) - len(ok)}
        if not ok:
            entry["error"] = next(iter(seeds.values())).get("error")
            out.setdefault(task, {})[loss] = entry
            continue
        vals = [ok[s]["metric"] for s in sorted(ok)]
        entry["mean"] = statistics.fmean(vals)
        entry["std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        entry["time_per_epoch_s"] = statistics.fmean(x["time_per_epoch_s"] for x in ok.values())
        for ref, label in ((recipe.BASELINE, "student"), ("kd", "kd")):
            base = {s: x for s, x in by.get((task, ref), {}).items() if x["status"] == "ok"}
            common = sorted(set(ok) & set(base))
            if loss == ref or not common:
                continue
            a = [ok[s]["metric"] for s in common]
            b = [base[s]["metric"] for s in common]
            diffs = [u - v for u, v in zip(a, b, strict=True)]
            g = {
                "mean": statistics.fmean(diffs),
                "std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
                "n": len(diffs),
            }
            if len(diffs) > 1 and any(d != diffs[0] for d in diffs):
                g["p_ttest_rel"] = float(stats.ttest_rel(a, b).pvalue)
            entry[f"gain_vs_{label}"] = g
        out.setdefault(task, {})[loss] = entry
    return out


def merge(paths: Sequence[str | Path], out: str | Path | None = None) -> dict:
    """Join results files of the same configuration (e.g. shards); later files win on clashes."""
    merged: dict[str, Any] | None = None
    runs: dict[tuple, dict] = {}
    for p in paths:
        res = json.loads(Path(p).read_text())
        if merged is None:
            merged = {k: v for k, v in res.items() if k not in ("runs", "summary")}
        elif res["config"] != merged["config"]:
            raise ValueError(f"{p}: another configuration than {paths[0]}")
        merged["teachers"].update(res.get("teachers", {}))
        merged["not_fitting"].update(res.get("not_fitting", {}))
        if res.get("plan", {}).get("runs", 0) > merged.get("plan", {}).get("runs", 0):
            merged["plan"] = res["plan"]  # the largest plan seen (shards share one)
        for x in res["runs"]:
            runs[(x["task"], x["loss"], x["seed"])] = x
    if merged is None:
        raise ValueError("nothing to merge")
    merged["runs"] = [runs[k] for k in sorted(runs, key=lambda k: (k[0], k[1], k[2]))]
    merged["summary"] = summarise(merged["runs"])
    if out:
        write_atomic(Path(out), merged)
    return merged
