"""The arena's offline data: scikit-learn's bundled digits and "digit scenes" built from them.

* Classification: ``load_digits`` (1,797 8x8 grey images, 10 classes, ships inside scikit-learn),
  a fixed stratified 70/30 train/test split (``random_state=0``); the student sees a fixed
  stratified 15% of the training split, the teacher all of it. A validation set of 300 training
  images the student never trains on (stratified, from the rest of the training split) chooses
  the arena's weight sweep, so no choice ever looks at the test set.
* Segmentation ("digit scenes"): 8x16 canvases with two 8x8 slots, each holding a random digit
  with probability 3/4, and a per-pixel label map: the digit's class where its ink is above
  0.25, background (class 10) elsewhere. Built deterministically (fixed generator) from the
  train digits (train scenes) and the test digits (test scenes), so no test digit is ever seen in
  training. The validation scenes are the training scenes after the student's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

SPLIT_SEED = 0
TEST_FRACTION = 0.3
STUDENT_FRACTION = 0.15
VALIDATION = 300  # images (or scenes) of the training split kept for choosing the sweep
HEIGHT, WIDTH = 8, 16
SLOTS = 2
FILL = 0.75
INK = 0.25
BACKGROUND = 10
SEG_CLASSES = 11


@dataclass
class Split:
    """Tensors for one task: teacher training set, student training subset, test set, and a
    validation set carved from the training split, disjoint from the student's subset (``None``:
    no validation, so no weight sweep)."""

    x_train: Tensor
    y_train: Tensor
    x_student: Tensor
    y_student: Tensor
    x_test: Tensor
    y_test: Tensor
    x_val: Tensor | None = None
    y_val: Tensor | None = None


@cache
def digits() -> Split:
    """Digits classification split: images ``(N, 1, 8, 8)`` in [0, 1], labels ``(N,)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    idx = torch.arange(len(y)).numpy()
    tr, te = train_test_split(
        idx, test_size=TEST_FRACTION, stratify=y.numpy(), random_state=SPLIT_SEED
    )
    st, rest = train_test_split(
        tr, train_size=STUDENT_FRACTION, stratify=y.numpy()[tr], random_state=SPLIT_SEED
    )
    va, _ = train_test_split(
        rest, train_size=VALIDATION, stratify=y.numpy()[rest], random_state=SPLIT_SEED
    )
    t = torch.as_tensor
    return Split(x[t(tr)], y[t(tr)], x[t(st)], y[t(st)], x[t(te)], y[t(te)], x[t(va)], y[t(va)])


def compose_scenes(images: Tensor, labels: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` scenes ``(n, 1, 8, 16)`` and label maps ``(n, 8, 16)`` from the given digits.

    A scene has two 8x8 slots side by side; each holds a random digit with probability 3/4.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, HEIGHT, WIDTH)
    y = torch.full((n, HEIGHT, WIDTH), BACKGROUND, dtype=torch.long)
    for i in range(n):
        picks = torch.randint(len(labels), (SLOTS,), generator=g).tolist()
        filled = (torch.rand(SLOTS, generator=g) < FILL).tolist()
        for slot, (k, keep) in enumerate(zip(picks, filled, strict=True)):
            if not keep:
                continue
            img = images[k, 0]
            ink = img > INK
            c = slot * 8
            x[i, 0, :, c : c + 8] = img
            y[i, :, c : c + 8][ink] = int(labels[k])
    return x, y


@cache
def digit_scenes(n_train: int = 1000, n_student: int = 300, n_test: int = 400) -> Split:
    """Segmentation split; the student's scenes are the first ``n_student`` training scenes, the
    validation scenes the next :data:`VALIDATION`."""
    d = digits()
    xtr, ytr = compose_scenes(d.x_train, d.y_train, n_train, seed=1)
    xte, yte = compose_scenes(d.x_test, d.y_test, n_test, seed=2)
    val = slice(n_student, n_student + VALIDATION)
    return Split(xtr, ytr, xtr[:n_student], ytr[:n_student], xte, yte, xtr[val], ytr[val])


def random_shift(x: Tensor, y: Tensor | None, g: torch.Generator, pixels: int = 1, fill: int = 0):
    """Shift each image (and its label map, filled with ``fill``) by up to ``pixels`` in x and y."""
    n, _, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pixels,) * 4)
    yp = None
    if y is not None and y.dim() == 3:
        yp = torch.nn.functional.pad(y, (pixels,) * 4, value=fill)
    shifts = torch.randint(0, 2 * pixels + 1, (n, 2), generator=g).tolist()
    xs, ys = [], []
    for i, (r, c) in enumerate(shifts):
        xs.append(xp[i, :, r : r + h, c : c + w])
        if yp is not None:
            ys.append(yp[i, r : r + h, c : c + w])
    return torch.stack(xs), (torch.stack(ys) if yp is not None else y)
