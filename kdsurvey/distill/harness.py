"""The feature-tapping harness: distil a student from a frozen teacher with any registered loss.

:class:`Distiller` wraps a teacher and a student. It taps named submodules of both with forward
hooks, runs the teacher under ``no_grad`` in eval mode (frozen), and feeds the loss exactly the
inputs its ``forward`` declares:

* ``logits_student`` / ``logits_teacher``: the networks' outputs;
* ``feats_student`` / ``feats_teacher``: the tapped maps, in tap order;
* ``feat_student`` / ``feat_teacher``: one tapped map (``feat_tap``, default the last tap),
  globally average-pooled to ``(B, C)`` when the loss works on embeddings;
* ``target``: the labels (class ids or a label map);
* anything else (a teacher classifier, region logits, dataset indices...) through ``providers``:
  ``{name: fn(ctx) -> value}``, where ``ctx`` is a :class:`Context`. Providers also override the
  built-in inputs above.

A loss given by registry name is built on the first batch (:meth:`Distiller.setup`), with the
channel counts (``student_channels``/``teacher_channels``), class count, stage sizes... that its
constructor takes, read from the shapes seen; its adapters are then submodules of the distiller,
so **create the optimiser after** ``setup``::

    distiller = Distiller(teacher, student, "fitnet", student_taps=["layer3"],
                          teacher_taps=["layer3"])   # FitNet at its authors' weight, 100
    distiller.setup(x0, y0)                       # builds FitNet's regressor from the shapes
    opt = torch.optim.SGD(distiller.parameters(), lr=0.05)   # student + adapters, not teacher
    out = distiller(x, y)            # out.loss = task_weight * task + weight * distillation
    out.loss.backward(); opt.step()

``Distiller.parameters()`` yields only trainable parameters of the student and the loss (the
teacher's are frozen and excluded). An optimiser created before ``setup`` would miss the adapters
and leave them untrained: once the loss owns parameters, the distiller watches every optimiser
step (a global ``torch.optim`` step pre-hook, removed by :meth:`Distiller.remove_hooks`), and the
first step of an optimiser that updates the student but not the adapters raises
``RuntimeError`` before anything is changed. Each optimiser is checked once.

Losses trained on extra views of each batch (SSKD's four rotations) declare them (their class's
``views``), or pass ``views=fn``: ``fn(inputs, target) -> (view_inputs, original_rows)``. Both
networks then see the views, the loss gets every row, and the label loss and the returned
output use the original rows.

Batches of any size follow ``setup``: the sizes read from the first batch are channel counts and
the like, and a loss built for a batch size (``semckd``'s embeddings) takes others. (A BatchNorm
adapter, as any BatchNorm in training mode, needs at least two samples.)
"""

from __future__ import annotations

import difflib
import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from kdsurvey.losses.base import Preset
from kdsurvey.losses.registry import get

BUILTIN = (
    "logits_student",
    "logits_teacher",
    "feat_student",
    "feat_teacher",
    "feats_student",
    "feats_teacher",
    "target",
)
SIZE_KWARGS = (
    "student_channels",
    "teacher_channels",
    "num_classes",
    "teacher_dim",
    "student_sizes",
    "teacher_sizes",
    "stage_sizes",
    "batch_size",
)


@dataclass
class Context:
    """What a provider sees: both networks' outputs and taps, the batch, the distiller."""

    inputs: Any
    target: Tensor | None
    student_out: Any
    teacher_out: Any
    feats_student: list[Tensor]
    feats_teacher: list[Tensor]
    distiller: Distiller
    epoch: int | None = None
    extra: dict = field(default_factory=dict)  # keyword arguments given to forward/setup
    original: Tensor | None = None  # with views: the rows of the original images


@dataclass
class DistillOutput:
    """One step's results: the student's output and the losses (``loss`` is what to minimise)."""

    output: Any
    loss: Tensor
    task_loss: Tensor
    distill_loss: Tensor
    parts: dict[str, float] = field(default_factory=dict)


class TapError(ValueError):
    """A tap names a submodule that does not exist."""


def resolve_module(model: nn.Module, name: str, role: str = "model") -> nn.Module:
    """The submodule called ``name`` (dotted path); :class:`TapError` listing close names."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    rest = [n for n in names if n not in close]
    shown = close + rest[: max(0, 30 - len(close))]
    more = f" (and {len(names) - len(shown)} more)" if len(names) > len(shown) else ""
    raise TapError(
        f"{role} has no submodule {name!r}; "
        + (f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
        + f"modules: {', '.join(shown)}{more}"
    )


def _is_vector_input(cls: type, key: str) -> bool:
    """True when the loss's example gives ``key`` as ``(B, D)`` vectors (embedding losses)."""
    try:
        ex = cls.example_inputs(batch=4)
    except Exception:  # noqa: BLE001 - no example: take maps as they are
        return False
    value = ex.get(key)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return isinstance(value, Tensor) and value.dim() == 2


def _shape(x: Any) -> Any:
    if isinstance(x, Tensor):
        return tuple(x.shape)
    if isinstance(x, (list, tuple)):
        return [_shape(v) for v in x]
    return type(x).__name__


class Distiller(nn.Module):
    """Teacher + student + distillation loss; see the module docstring.

    Args:
        teacher: the frozen teacher (set to eval mode, ``requires_grad_(False)``).
        student: the network being trained.
        loss: a registry name (built at :meth:`setup` with shape-derived sizes and
            ``loss_kwargs``), or an already built loss module (used as is).
        student_taps, teacher_taps: dotted submodule names whose outputs feed
            ``feats_*``/``feat_*`` (same number for both unless the loss allows otherwise).
        weight: multiplies the distillation loss, on top of the loss's own ``loss_weight`` (whose
            default is its authors' weight): 1 trains at the authors' setting.
        task_loss: ``fn(student_output, target)``; default cross-entropy (``ignore_index=255``)
            when a target is given. ``task_weight`` multiplies it; ``None`` (default) takes the
            preset's label-term weight (e.g. 0.1 for KD's CIFAR recipe).
        preset: which of the loss's training settings to use (``None``: its default); gives the
            loss's hyperparameters (when built by name), the label-term weight and the warm-up
            of the distillation term, linear over ``warmup_epochs`` (needs ``distiller.epoch``).
        feat_tap: which tap feeds ``feat_*`` (default the last one).
        providers: extra or overriding forward inputs, ``{name: fn(ctx) -> value}``.
        views: ``fn(inputs, target) -> (view_inputs, original_rows)``, the views both networks
            see (default: the loss's own ``views``, e.g. SSKD's rotations; ``False``: none).
    """

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        loss: str | nn.Module,
        *,
        student_taps: Sequence[str] = (),
        teacher_taps: Sequence[str] = (),
        weight: float = 1.0,
        task_weight: float | None = None,
        task_loss: Callable[[Any, Tensor], Tensor] | None = None,
        loss_kwargs: Mapping[str, Any] | None = None,
        feat_tap: int = -1,
        providers: Mapping[str, Callable[[Context], Any]] | None = None,
        preset: str | None = None,
        views: Callable[[Any, Tensor | None], tuple[Any, Tensor]] | bool | None = None,
    ):
        super().__init__()
        self.student = student
        # the teacher is kept out of the module tree so parameters()/state_dict() skip it
        object.__setattr__(self, "teacher", teacher.eval().requires_grad_(False))
        self.student_taps = list(student_taps)
        self.teacher_taps = list(teacher_taps)
        self.weight = float(weight)
        self.task_loss_fn = task_loss
        self.loss_kwargs = dict(loss_kwargs or {})
        self.feat_tap = feat_tap
        self.providers = dict(providers or {})
        self.epoch: int | None = None
        self._built_here = isinstance(loss, str)
        if isinstance(loss, str):
            self.loss_cls = get(loss)
            self.loss_name = loss
            self.loss = None
        else:
            self.loss_cls = type(loss)
            self.loss_name = getattr(loss, "name", type(loss).__name__)
            self.loss = loss
        self.preset_name = preset
        self.preset = (
            self.loss_cls.preset(preset) if hasattr(self.loss_cls, "preset") else Preset("")
        )
        self.task_weight = float(self.preset.task_weight if task_weight is None else task_weight)
        self._captured: dict[str, list[Tensor | None]] = {"student": [], "teacher": []}
        self._hooks = []
        for role, model, taps in (
            ("student", student, self.student_taps),
            ("teacher", teacher, self.teacher_taps),
        ):
            self._captured[role] = [None] * len(taps)
            for i, name in enumerate(taps):
                module = resolve_module(model, name, role)
                self._hooks.append(module.register_forward_hook(self._hook(role, i)))
        self.params = inspect.signature(self.loss_cls.forward).parameters
        self.views = getattr(self.loss_cls, "views", None) if views is None else views or None
        self._ready = False
        self._step_hook = None
        self._size_kwargs_seen: dict[str, Any] = {}
        self._checked_optimisers: weakref.WeakSet = weakref.WeakSet()

    # -- plumbing ------------------------------------------------------------------------------
    def _hook(self, role: str, i: int):
        def hook(_module, _inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            self._captured[role][i] = output

        return hook

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        self.teacher.eval()  # always frozen
        return self

    def _apply(self, fn, recurse=True):  # .to(device)/.double() reach the teacher too
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    def remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        if self._step_hook is not None:
            self._step_hook.remove()
            self._step_hook = None

    def _watch_optimisers(self) -> None:
        """Check each optimiser's first step: one that updates the student must also update the
        loss's adapters (see the module docstring). Holds the distiller weakly."""
        if self._step_hook is not None or self.loss is None:
            return
        if not any(p.requires_grad for p in self.loss.parameters()):
            return
        me = weakref.ref(self)

        def check(optimiser, _args, _kwargs):
            d = me()
            if d is None or optimiser in d._checked_optimisers:
                return
            d._checked_optimisers.add(optimiser)
            given = {id(p) for g in optimiser.param_groups for p in g["params"]}
            if not any(id(p) in given for p in d.student.parameters()):
                return  # not this distiller's optimiser (e.g. another network's)
            missing = [n for n, p in d.loss.named_parameters() if p.requires_grad]
            missing = [n for n in missing if id(d.loss.get_parameter(n)) not in given]
            if missing:
                raise RuntimeError(
                    f"this optimiser updates the student but not the {len(missing)} adapter "
                    f"parameters of loss {d.loss_name!r} ({', '.join(missing[:3])}"
                    f"{', ...' if len(missing) > 3 else ''}): it was probably created before "
                    "distiller.setup(...), which builds them. Create it after setup, from "
                    "distiller.parameters()"
                )

        self._step_hook = register_optimizer_step_pre_hook(check)
        weakref.finalize(self, self._step_hook.remove)  # gone with the distiller, at the latest

    def _run(self, inputs: Any, target: Tensor | None, extra: dict | None = None) -> Context:
        original = None
        if self.views is not None:
            inputs, original = self.views(inputs, target)
        with torch.no_grad():
            teacher_out = self.teacher(inputs)
        feats_t = list(self._captured["teacher"])
        student_out = self.student(inputs)
        feats_s = list(self._captured["student"])
        return Context(
            inputs,
            target,
            student_out,
            teacher_out,
            feats_s,
            feats_t,
            self,
            self.epoch,
            dict(extra or {}),
            original,
        )

    def _feat(self, ctx: Context, role: str) -> Tensor:
        feats = ctx.feats_student if role == "student" else ctx.feats_teacher
        if not feats:
            raise ValueError(
                f"loss {self.loss_name!r} takes feat_{role}: give {role}_taps (e.g. ['layer3'])"
            )
        x = feats[self.feat_tap]
        if x.dim() > 2 and self._vector.get(f"feat_{role}"):
            x = x.flatten(2).mean(2)
        return x

    def _builtin(self, key: str, ctx: Context) -> Any:
        if key == "logits_student":
            return ctx.student_out
        if key == "logits_teacher":
            return ctx.teacher_out
        if key == "target":
            return ctx.target
        if key in ("feat_student", "feat_teacher"):
            return self._feat(ctx, key.split("_")[1])
        role = key.split("_")[1]
        feats = ctx.feats_student if role == "student" else ctx.feats_teacher
        if not feats:
            raise ValueError(f"loss {self.loss_name!r} takes {key}: give {role}_taps")
        if self._vector.get(key):
            feats = [f.flatten(2).mean(2) if f.dim() > 2 else f for f in feats]
        return feats

    def loss_inputs(self, ctx: Context) -> dict[str, Any]:
        """The keyword arguments the loss's forward receives for this batch; a ``TypeError``
        names every input it cannot derive (and unset constructor arguments) at once."""
        kwargs, missing = {}, []
        for key, p in self.params.items():
            if key == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            required = p.default is inspect.Parameter.empty
            if key in self.providers:
                kwargs[key] = self.providers[key](ctx)
            elif key in BUILTIN:
                if key == "target" and ctx.target is None:
                    if required:
                        raise ValueError(f"loss {self.loss_name!r} needs target: pass labels")
                    continue
                if (
                    not required
                    and key.startswith("feat")
                    and not (self.student_taps if key.endswith("student") else self.teacher_taps)
                ):
                    continue
                kwargs[key] = self._builtin(key, ctx)
            elif key == "epoch" and self.epoch is not None:
                kwargs[key] = self.epoch
            elif required:
                missing.append(key)
        if missing:
            built = {**self._size_kwargs_seen, **self.preset.kwargs, **self.loss_kwargs}
            given = ", ".join(f"{k!r}: fn(ctx)" for k in missing)
            raise TypeError(
                f"loss {self.loss_name!r} needs input{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))}, which the Distiller cannot derive; pass "
                f"providers={{{given}}}" + self._unset_hint(built)
            )
        return kwargs

    def _size_kwargs(self, ctx: Context) -> dict[str, Any]:
        init = inspect.signature(self.loss_cls.__init__).parameters
        out: dict[str, Any] = {}
        uses_list = "feats_student" in self.params
        uses_one = "feat_student" in self.params
        for name in SIZE_KWARGS:
            if name not in init or name in self.loss_kwargs:
                continue
            ann = str(init[name].annotation)
            if name in ("student_channels", "teacher_channels"):
                feats = ctx.feats_student if name.startswith("student") else ctx.feats_teacher
                if not feats:
                    continue
                if "Sequence" in ann or "list" in ann:
                    out[name] = [int(f.shape[1]) for f in feats]
                elif uses_one or not uses_list:
                    out[name] = int(feats[self.feat_tap].shape[1])
                else:
                    out[name] = int(feats[-1].shape[1])
            elif name == "num_classes" and isinstance(ctx.teacher_out, Tensor):
                out[name] = int(ctx.teacher_out.shape[1])
            elif name == "teacher_dim" and ctx.feats_teacher:
                out[name] = int(ctx.feats_teacher[-1].shape[1])
            elif name in ("student_sizes", "teacher_sizes"):
                feats = ctx.feats_student if name.startswith("student") else ctx.feats_teacher
                out[name] = [int(f.shape[2]) for f in feats if f.dim() == 4]
            elif name == "stage_sizes":
                out[name] = [
                    int(f.shape[2] * f.shape[3]) for f in ctx.feats_student if f.dim() == 4
                ]
            elif name == "batch_size":
                out[name] = int(ctx.feats_student[0].shape[0]) if ctx.feats_student else None
        return out

    def warmup(self) -> float:
        """The preset's warm-up factor at ``self.epoch`` (0-based): ``(epoch + 1) / warmup``
        capped at 1, as the official loops' ``min(epoch / warmup, 1)`` with 1-based epochs; 1
        without a warm-up or an epoch."""
        n = self.preset.warmup_epochs
        if not n or self.epoch is None:
            return 1.0
        return min(1.0, (self.epoch + 1) / n)

    # -- public API ----------------------------------------------------------------------------
    @torch.no_grad()
    def setup(self, inputs: Any, target: Tensor | None = None, **extra: Any) -> Distiller:
        """Build the loss (and its adapters) from one batch's shapes and check that it runs.

        Call it once before creating the optimiser. Raises ``ValueError`` naming the shapes and
        the tapped layers when the loss cannot take them. Returns ``self``.
        """
        self._vector = {k: _is_vector_input(self.loss_cls, k) for k in BUILTIN}
        was_training = self.student.training
        self.student.eval()  # no BatchNorm statistics update from the probe
        try:
            ctx = self._run(inputs, target, extra)
            if self.loss is None:
                self._size_kwargs_seen = self._size_kwargs(ctx)
                kwargs = {**self._size_kwargs_seen, **self.preset.kwargs, **self.loss_kwargs}
                try:
                    self.loss = self.loss_cls(**kwargs)
                except (TypeError, ValueError) as e:
                    raise ValueError(
                        f"loss {self.loss_name!r} cannot be built with {kwargs}: {e}"
                        + self._unset_hint(kwargs, required_only=True)
                    ) from e
            kw = self.loss_inputs(ctx)
            try:
                self.loss(**kw)
            except (ValueError, RuntimeError, IndexError, AssertionError) as e:
                raise ValueError(self._describe(kw, e)) from e
        finally:
            self.student.train(was_training)
        self._ready = True
        self._watch_optimisers()
        return self

    def _unset_hint(
        self, given: Mapping[str, Any], required_only: bool = False, error: str | None = None
    ) -> str:
        """The constructor arguments the harness left unset (required ones, or those left at
        ``None``; with ``error``, only those it names), as the ``loss_kwargs=`` that supplies
        them; empty when there are none or the loss was given already built."""
        if not self._built_here:
            return ""
        init = inspect.signature(self.loss_cls.__init__).parameters
        unset = [
            n
            for n, p in init.items()
            if n != "self"
            and n not in given
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            and (p.default is inspect.Parameter.empty or (not required_only and p.default is None))
            and (error is None or n in error)
        ]
        if not unset:
            return ""
        example = ", ".join(f"{n!r}: ..." for n in unset)
        return (
            f"\n  constructor arguments the Distiller cannot derive, left unset: "
            f"{', '.join(unset)}; give them with loss_kwargs={{{example}}}"
        )

    def _describe(self, kw: dict[str, Any], e: Exception) -> str:
        lines = [f"loss {self.loss_name!r} cannot take these inputs ({type(e).__name__}: {e})"]
        built = {**self._size_kwargs_seen, **self.preset.kwargs, **self.loss_kwargs}
        hint = self._unset_hint(built, error=str(e))
        if hint:
            lines.append(hint.strip("\n"))
        for key, value in kw.items():
            where = ""
            if key.startswith("feat"):
                taps = self.student_taps if key.endswith("student") else self.teacher_taps
                where = f" from {taps if key.startswith('feats') else taps[self.feat_tap]}"
            lines.append(f"  {key}: {_shape(value)}{where}")
        return "\n".join(lines)

    def forward(self, inputs: Any, target: Tensor | None = None, **extra: Any) -> DistillOutput:
        """One step's forward; ``extra`` (e.g. ``index=`` dataset indices) reaches providers as
        ``ctx.extra``."""
        if not self._ready:
            raise RuntimeError(
                "call distiller.setup(inputs, target) on a first batch before training (it builds "
                "the loss's adapters), then create the optimiser from distiller.parameters()"
            )
        ctx = self._run(inputs, target, extra)
        distill = self.loss(**self.loss_inputs(ctx))
        output = ctx.student_out if ctx.original is None else ctx.student_out[ctx.original]
        if target is not None and self.task_weight:
            fn = self.task_loss_fn or (lambda out, y: F.cross_entropy(out, y, ignore_index=255))
            task = fn(output, target)
        else:
            task = distill.new_zeros(())
        total = self.task_weight * task + self.weight * self.warmup() * distill
        return DistillOutput(
            output,
            total,
            task.detach(),
            distill.detach(),
            {"task": task.item(), "distill": distill.item(), "total": total.item()},
        )
