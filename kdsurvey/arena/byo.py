"""Bring your own: the arena's comparison on your dataset, teacher and student.

    import torch
    from kdsurvey.arena import compare

    # e.g. CIFAR-100 from a local folder, as tensors (N, 3, 32, 32) / (N,)
    res = compare(
        teacher=my_resnet56,                # trained, or pass teacher_trained=False to train it
        make_student=lambda: MyResNet8(),    # a fresh student per run (seeded by the arena)
        train=(x_train, y_train),            # the student's training data
        test=(x_test, y_test),
        student_taps=["layer1", "layer2", "layer3"],
        teacher_taps=["layer1", "layer2", "layer3"],
        losses=["kd", "dkd", "fitnet"],      # default: every loss that fits
        seeds=range(5), epochs=60, out="my_arena.json",
    )
    print(res["summary"])

The same recipe, weights, results file (resumable, written after every run), paired statistics
and "not fitting" reasons as ``kdsurvey arena``. ``dense=True`` treats targets as label maps
(metric mIoU; ``classes`` then gives the class count).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from torch import Tensor, nn

from kdsurvey.arena import core, data, sweep


def compare(
    teacher: nn.Module,
    make_student: Callable[[], nn.Module],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    validation: tuple[Tensor, Tensor] | None = None,
    student_taps: Sequence[str] = (),
    teacher_taps: Sequence[str] = (),
    losses: Sequence[str] | None = None,
    seeds: Sequence[int] = range(5),
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 0.05,
    shift: int = 1,
    dense: bool = False,
    classes: int | None = None,
    teacher_trained: bool = True,
    teacher_train: tuple[Tensor, Tensor] | None = None,
    name: str = "custom",
    out: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    max_steps: int | None = None,
) -> dict:
    """Train ``make_student()`` with each loss (and alone, and with plain KD) for every seed.

    ``teacher``: trained unless ``teacher_trained=False`` (then it is trained with
    cross-entropy on ``teacher_train``, default ``train``, by the same recipe). Losses that need
    taps get them from ``student_taps``/``teacher_taps``; a loss that cannot run is recorded with
    its error in the results, never dropped. ``validation`` (held out from ``train``): each loss
    also runs at the best of its weight x 0.1 and x 0.01 chosen on it (see
    :mod:`kdsurvey.arena.sweep`); without it, only at its authors' weight. Returns the results
    dict (see ``run_arena``).
    """
    x_tr, y_tr = train
    x_te, y_te = test
    xt, yt = teacher_train or train
    x_va, y_va = validation or (None, None)
    split = data.Split(xt, yt, x_tr, y_tr, x_te, y_te, x_va, y_va)
    if dense:
        n = classes or int(max(int(y_tr[y_tr != 255].max()), int(y_te[y_te != 255].max()))) + 1
        metric = lambda o, y: core.miou(o, y, classes=n)  # noqa: E731
    else:
        metric = core.accuracy
    r = core.Recipe(
        epochs=epochs,
        dense_epochs=epochs,
        teacher_epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        shift=shift,
    )
    template = copy.deepcopy(teacher)
    task = core.Task(
        name,
        split,
        lambda: copy.deepcopy(template),
        make_student,
        list(student_taps),
        list(teacher_taps),
        metric,
        "mIoU" if dense else "accuracy",
        dense=dense,
        teacher=teacher if teacher_trained else None,
        shift_fill=255 if dense else 0,
    )
    if not teacher_trained:
        trained, _ = core.train_teacher(task, r, device=device, cache=False)
        task.teacher = trained
    from kdsurvey.arena import recipe

    names = list(losses) if losses else recipe.all_jobs_losses()
    return _run_custom(task, names, seeds, r, out, device, progress, max_steps)


def _run_custom(task, names, seeds, r, out, device, progress, max_steps):
    from kdsurvey.arena import recipe

    # custom tasks use the classification/segmentation placement of each loss
    home = "segmentation" if task.dense else "classification"
    original = recipe.home_tasks

    def home_tasks(loss):
        return [task.name] if home in original(loss) else []

    recipe.home_tasks = home_tasks
    try:
        return core.run_arena(
            names,
            [task.name],
            seeds,
            r,
            out,
            device,
            progress=progress,
            task_objects={task.name: task},
            max_steps=max_steps,
            factors=sweep.FACTORS if task.split.x_val is not None else (1.0,),
        )
    finally:
        recipe.home_tasks = original
