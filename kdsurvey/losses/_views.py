"""Extra views of a batch that some losses train on, built by the harness's ``views=`` hook.

A view function takes ``(inputs, target)`` and returns ``(view_inputs, original)``: the batch the
networks see and the row index of each original image in it (the rows the label loss and the
reported output use). A loss declares the views its official training loop builds as its
``views`` class attribute; :class:`kdsurvey.distill.Distiller` applies them unless given others.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

ROTATIONS = 4  # 0, 90, 180 and 270 degrees


def rotations(inputs: Tensor, target: Any = None) -> tuple[Tensor, Tensor]:
    """Every image with its rotations by 90, 180 and 270 degrees, rows ``4i..4i+3`` (the
    original first), as SSKD's and HSAKD's loaders build them; images must be square."""
    if inputs.dim() != 4 or inputs.shape[2] != inputs.shape[3]:
        raise ValueError(
            f"rotated views need square images (B, C, H, H), got {tuple(inputs.shape)}"
        )
    x = torch.stack([torch.rot90(inputs, k, (2, 3)) for k in range(ROTATIONS)], 1)
    original = torch.arange(inputs.shape[0], device=inputs.device) * ROTATIONS
    return x.flatten(0, 1), original
