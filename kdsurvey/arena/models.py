"""The arena's networks: small CNN classifiers and encoder-decoder segmenters, teacher and student.

Taps (``Distiller`` hook names) are the post-ReLU stage outputs: ``stage1`` (8x8), ``stage2``
(4x4), ``stage3`` (2x2) for the classifier, and ``enc2`` (4x8), ``enc3`` (2x4), ``dec`` (8x16,
the input of the 1x1 classifier) for the 8x16 digit scenes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=False),
    )


class ConvClassifier(nn.Module):
    """Three conv stages (8x8, 4x4, 2x2) with BatchNorm, global average pooling, linear ``fc``."""

    taps = ("stage1", "stage2", "stage3")

    def __init__(self, widths=(32, 64, 128), classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.stage1 = _block(in_channels, widths[0])
        self.stage2 = _block(widths[0], widths[1], stride=2)
        self.stage3 = _block(widths[1], widths[2], stride=2)
        self.fc = nn.Linear(widths[2], classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(x.mean((2, 3)))


class Segmenter(nn.Module):
    """A small U-Net: encoder stages at full, 1/2 and 1/4 resolution, decoder with skips, 1x1
    ``classifier``."""

    taps = ("enc2", "enc3", "dec")

    def __init__(self, widths=(16, 32, 64), classes: int = 11, in_channels: int = 1):
        super().__init__()
        w0, w1, w2 = widths
        self.enc1 = _block(in_channels, w0)
        self.enc2 = _block(w0, w1, stride=2)
        self.enc3 = nn.Sequential(_block(w1, w2, stride=2), _block(w2, w2))
        self.up = _block(w2 + w1, w1)
        self.dec = _block(w1 + w0, w0)
        self.classifier = nn.Conv2d(w0, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        u = self.up(torch.cat([e2, F.interpolate(e3, size=e2.shape[-2:], mode="nearest")], 1))
        d = self.dec(torch.cat([e1, F.interpolate(u, size=e1.shape[-2:], mode="nearest")], 1))
        return self.classifier(d)


class TinyResNet(nn.Module):
    """A ResNet-18-shaped network (``conv1``, ``layer1..4`` of BasicBlocks, ``fc``), any width.

    Used by the README example in place of ``torchvision.models.resnet18``, which has no CPU wheel
    matching torch 2.13.0 in this environment; the submodule names are the same.
    """

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.down = None
            if stride != 1 or c_in != c_out:
                self.down = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
                )

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(out + (x if self.down is None else self.down(x)))

    def __init__(self, width: int = 64, blocks=(2, 2, 2, 2), classes: int = 10, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, c = [], width
        for i, n in enumerate(blocks):
            c_out = width * 2**i
            layers.append(
                nn.Sequential(
                    *[
                        self.Block(c if j == 0 else c_out, c_out, 2 if (i and j == 0) else 1)
                        for j in range(n)
                    ]
                )
            )
            c = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


class TinyGPT(nn.Module):
    """A small causal transformer (pre-norm blocks, learned positions) for the language arena.

    ``forward(input_ids, attention_mask=None)`` returns ``[B, T, V]`` logits, as a Hugging Face
    causal LM's ``.logits``; padding is on the right, which a causal model never attends to from
    earlier positions, so the mask is accepted and not needed.
    """

    def __init__(self, vocab: int = 64, width: int = 64, layers: int = 2, heads: int = 4,
                 max_len: int = 64):  # fmt: skip
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(max_len, width)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=input_ids.device)
        for block in self.blocks:
            x = block(x, src_mask=causal, is_causal=True)
        return self.head(self.norm(x))
