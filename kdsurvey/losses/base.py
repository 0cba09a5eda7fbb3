"""What every distillation loss shares: the base class and its contract.

Every loss is a ``torch.nn.Module`` whose ``forward`` takes keyword tensors named as in
``tests/fixtures/official_cases/README.md`` (``logits_student``, ``feat_teacher``, ``feats_student``,
``target``...) and returns a scalar. Teacher inputs are treated as constants (detached).
``example_inputs`` makes inputs of the right shapes so the same property tests, demo and benchmark
run over the whole registry.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from kdsurvey.losses._labels import IGNORE_INDEX


@dataclass(frozen=True)
class Preset:
    """One training setting its authors give (a dataset or benchmark), with where it is written.

    A loss's constructor defaults *are* its default preset (the first of ``presets``), so
    ``Loss()``, ``create(name)`` and the arena train alike and each value is written once, in the
    signature; the default preset's ``kwargs`` is therefore empty, and other presets name only
    what they change. The label term's weight and the warm-up are not the loss's to apply: the
    training loop (:class:`kdsurvey.distill.Distiller`, the arena) reads them from here.
    """

    source: str  # official config file:line, script flag or paper table/section
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # constructor overrides
    task_weight: float = 1.0  # weight of the label (cross-entropy) term beside the loss
    warmup_epochs: int = 0  # the distillation term ramps linearly to full over these epochs
    note: str = ""  # what the source leaves implicit, or how it was read


class DistillationLoss(nn.Module):
    """Base class: registry metadata plus the hooks the generic tests, demo and benchmark use."""

    name: ClassVar[str]  # set by ``register``
    paper: ClassVar[str]  # catalogue id of the paper
    evidence: ClassVar[str]  # how far it is proven: a level of kdsurvey.losses.evidence.LEVELS
    # True when the loss reaches its minimum, zero, once every student input equals its teacher
    # input.
    zero_at_match: ClassVar[bool] = True
    # True when permuting the batch (of every input alike) leaves the loss unchanged.
    batch_invariant: ClassVar[bool] = True
    # The authors' training settings by name, the default first (see :class:`Preset`).
    presets: ClassVar[dict[str, Preset]] = {}
    # The extra views of each batch its official loop trains on, ``fn(inputs, target) ->
    # (view_inputs, original_rows)`` (see kdsurvey.losses._views); None: the batch as it is.
    views: ClassVar[Any] = None

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        """``forward``; a shape error of a loss built without the adapters it can own (no
        parameters, though its constructor takes ``student_channels``/``teacher_channels``)
        says which constructor arguments build them."""
        try:
            return super().__call__(*args, **kwargs)
        except ValueError as e:
            msg = str(e)
            init = inspect.signature(type(self).__init__).parameters
            if (
                "student_channels" in init
                and "teacher_channels" in init
                and "student_channels" not in msg
                and "student" in msg
                and "teacher" in msg
                and not any(True for _ in self.parameters())
            ):
                raise ValueError(
                    f"{msg}; the loss owns adapters for different widths: build it with "
                    "student_channels=..., teacher_channels=... (the student's and the "
                    "teacher's channel counts)"
                ) from e
            raise

    @classmethod
    def preset(cls, name: str | None = None) -> Preset:
        """The preset called ``name`` (``None``: the default, i.e. the constructor's defaults).

        A loss whose authors give no settings has no presets: its default is then an empty one,
        weight 1 and label weight 1. An unknown name is a ``KeyError`` that lists the known ones.
        """
        if name is None:
            return next(iter(cls.presets.values()), Preset(source=""))
        try:
            return cls.presets[name]
        except KeyError:
            known = ", ".join(cls.presets) or "none"
            close = difflib.get_close_matches(name, cls.presets, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"loss {cls.name!r} has no preset {name!r}{hint} (presets: {known})"
            ) from None

    @classmethod
    def example_inputs(
        cls,
        batch: int = 4,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
        large: bool = False,
    ) -> dict[str, Any]:
        """Random forward kwargs of realistic shapes (``large``: benchmark size).

        Student and teacher tensors of a pair have the same shape, so setting the student equal to
        the teacher is always possible. The default follows the input names of ``forward``
        (``logits_*`` with or without ``target``, ``feats_*``, ``feat_*``); losses with other
        inputs override it.
        """
        names = inspect.signature(cls.forward).parameters
        if "logits_student" in names:
            return logits_example(batch, dtype, generator, large, with_target="target" in names)
        if "feats_student" in names:
            return feature_example(batch, dtype, generator, large, layers=2)
        if "feat_student" in names:
            return feature_example(batch, dtype, generator, large)
        raise NotImplementedError(f"{cls.__name__} must define example_inputs")

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """Constructor arguments ``example_inputs`` needs beyond the defaults (the sizes of an
        adapter the loss must build for those shapes); the loss page's usage block passes them
        to ``create``. None for a loss whose defaults take its example as it is."""
        return {}


def logits_example(batch, dtype, generator, large, with_target=False) -> dict[str, Tensor]:
    """Student/teacher logits (and labels) for classification losses: 256x100 when ``large``."""
    n, classes = (256, 100) if large else (batch, 10)
    out = {
        "logits_student": torch.randn(n, classes, generator=generator, dtype=dtype),
        "logits_teacher": torch.randn(n, classes, generator=generator, dtype=dtype) * 2,
    }
    if with_target:
        out["target"] = torch.randint(0, classes, (n,), generator=generator)
    return out


def feature_example(batch, dtype, generator, large, layers=0) -> dict[str, Any]:
    """Student/teacher feature maps: 64x256x16x16 when ``large``; ``layers`` > 0 gives lists."""
    shape = (64, 256, 16, 16) if large else (batch, 8, 4, 4)

    def rand():
        return torch.randn(*shape, generator=generator, dtype=dtype)

    if layers:
        return {
            "feats_student": [rand() for _ in range(layers)],
            "feats_teacher": [rand() for _ in range(layers)],
        }
    return {"feat_student": rand(), "feat_teacher": rand()}


def layers_example(batch, dtype, generator, large, layers) -> dict:
    """Lists of feature maps, one size per layer (halving the spatial size, as in a backbone)."""
    if large:
        shapes = [(64, 256, 16, 16), (64, 256, 8, 8), (64, 256, 4, 4)][:layers]
    else:
        shapes = [(batch, 8, 4, 4), (batch, 8, 2, 2), (batch, 8, 1, 1)][:layers]

    def rand(shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    return {
        "feats_student": [rand(s) for s in shapes],
        "feats_teacher": [rand(s) for s in shapes],
    }


def embedding_example(batch, dtype, generator, large, width=16, teacher_width=None):
    """Student/teacher embeddings ``(B, D)``: ``(256, 256)`` when ``large``."""
    n, d = (256, 256) if large else (batch, width)
    dt = d if teacher_width is None or large else teacher_width
    return {
        "feat_student": torch.randn(n, d, generator=generator, dtype=dtype),
        "feat_teacher": torch.randn(n, dt, generator=generator, dtype=dtype),
    }


def score_maps_example(batch, dtype, generator, large, classes=5) -> dict[str, Tensor]:
    """Student/teacher score maps ``(batch, classes, 8, 8)``; ``(16, 19, 64, 64)`` when large."""
    shape = (16, 19, 64, 64) if large else (batch, classes, 8, 8)
    return {
        "logits_student": torch.randn(*shape, generator=generator, dtype=dtype),
        "logits_teacher": torch.randn(*shape, generator=generator, dtype=dtype) * 2,
    }


def label_map_example(n, size, classes, generator, cell=4) -> Tensor:
    """Blocky random labels ``(n, H, W)`` (``cell`` x ``cell`` regions), about 5% ignored."""
    h, w = size
    coarse = torch.randint(0, classes, (n, -(-h // cell), -(-w // cell)), generator=generator)
    labels = coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :h, :w].clone()
    ignore = torch.rand(n, h, w, generator=generator) < 0.05
    labels[ignore] = IGNORE_INDEX
    return labels


def feature_label_map_example(batch, dtype, generator, large, classes=5) -> dict[str, Tensor]:
    """``feature_example`` maps plus labels at twice (four times when large) their size."""
    out = feature_example(batch, dtype, generator, large)
    n, _, h, w = out["feat_student"].shape
    factor = 4 if large else 2
    out["target"] = label_map_example(n, (h * factor, w * factor), classes, generator)
    return out
