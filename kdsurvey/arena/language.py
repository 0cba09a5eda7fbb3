"""A synthetic language whose next-token distribution is known exactly: the language arena's data.

Sixty-four tokens: ``BOS``, ``EOS``, ``COPY``, four bracket pairs and 55 words. A sentence is
generated token by token from a state that the prefix determines (so the true next-token
distribution is known at every position):

* **Brackets** open (up to :data:`DEPTH` deep) and must close in order: the matching closer of the
  innermost open bracket is likely, any other closer is not. Remembering the stack is long-range
  structure.
* **Copies**: after ``COPY`` the next :data:`SPAN` tokens repeat the last :data:`SPAN` words
  written before it, so a model must look back to predict them.
* **Words** follow a sparse first-order Markov chain (each word has a few likely successors).
* **Noise**: every step mixes in :data:`NOISE` of the uniform distribution, so every token has
  non-zero probability and both exact KL divergences to a model are finite.

Sentences end at ``EOS`` or after :data:`MAX_LEN` tokens. :func:`next_token_probs` replays the
state over a batch of prefixes and returns the exact distribution of every position, which the
arena's metrics use (held-out NLL, forward and reverse KL to the truth, probability mass covered).
Everything is seeded and offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch
from torch import Tensor

VOCAB = 64
BOS, EOS, COPY = 0, 1, 2
PAIRS = 4
OPEN = tuple(3 + 2 * i for i in range(PAIRS))  # 3, 5, 7, 9
CLOSE = tuple(o + 1 for o in OPEN)  # 4, 6, 8, 10
FIRST_WORD = 3 + 2 * PAIRS  # 11: words are 11..63
WORDS = VOCAB - FIRST_WORD
DEPTH = 4
SPAN = 3
MAX_LEN = 40
NOISE = 0.02
P_OPEN, P_CLOSE, P_COPY, P_EOS = 0.12, 0.25, 0.06, 0.08
MIN_LEN = 8  # no EOS before this many tokens
PAD = EOS  # sentences are right-padded with EOS (labels there are -100)


@dataclass
class State:
    """What the prefix determines: the open brackets, the recent words, a pending copy."""

    stack: list[int] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    copying: list[int] = field(default_factory=list)
    length: int = 0


@cache
def transitions(seed: int = 0) -> np.ndarray:
    """The words' Markov chain ``(WORDS + 1, WORDS)``: row ``i`` follows word ``i``, the last row
    starts a sentence. Each row puts most mass on 4 successors (Dirichlet weights)."""
    rng = np.random.default_rng(seed)
    out = np.full((WORDS + 1, WORDS), 0.02 / WORDS)
    for row in out:
        succ = rng.choice(WORDS, size=4, replace=False)
        row[succ] += 0.98 * rng.dirichlet(np.full(4, 0.7))
    return out / out.sum(1, keepdims=True)


def probs(state: State, seed: int = 0) -> np.ndarray:
    """The exact next-token distribution ``(VOCAB,)`` after a prefix in ``state``."""
    p = np.zeros(VOCAB)
    if state.copying:
        p[state.copying[0]] = 1.0
    else:
        rest = 1.0
        if state.length >= MIN_LEN and not state.stack:
            p[EOS] = P_EOS
            rest -= P_EOS
        if state.stack:
            p[CLOSE[state.stack[-1]]] = P_CLOSE
            rest -= P_CLOSE
        if len(state.stack) < DEPTH:
            p[list(OPEN)] = P_OPEN / PAIRS
            rest -= P_OPEN
        if len(state.words) >= SPAN:
            p[COPY] = P_COPY
            rest -= P_COPY
        prev = state.words[-1] - FIRST_WORD if state.words else WORDS
        p[FIRST_WORD:] = rest * transitions(seed)[prev]
    return (1 - NOISE) * p + NOISE / VOCAB


def step(state: State, token: int) -> None:
    """Advance ``state`` past ``token`` (any token: the rules are total, noise included)."""
    state.length += 1
    if state.copying:
        state.copying.pop(0)
    elif token == COPY and len(state.words) >= SPAN:
        state.copying = list(state.words[-SPAN:])
        return
    if token in OPEN and len(state.stack) < DEPTH:
        state.stack.append(OPEN.index(token))
    elif token in CLOSE and state.stack and CLOSE[state.stack[-1]] == token:
        state.stack.pop()
    elif token >= FIRST_WORD:
        state.words.append(token)


def sample(n: int, seed: int, language_seed: int = 0) -> Tensor:
    """``n`` sentences ``(n, MAX_LEN + 1)``: ``BOS`` then the tokens, right-padded with ``PAD``."""
    rng = np.random.default_rng(seed)
    out = np.full((n, MAX_LEN + 1), PAD, dtype=np.int64)
    out[:, 0] = BOS
    for i in range(n):
        state = State()
        for t in range(1, MAX_LEN + 1):
            token = int(rng.choice(VOCAB, p=probs(state, language_seed)))
            out[i, t] = token
            if token == EOS:
                break
            step(state, token)
    return torch.from_numpy(out)


def lengths(tokens: Tensor) -> Tensor:
    """Per sentence, the number of tokens up to and including ``EOS`` (BOS included)."""
    eos = (tokens[:, 1:] == EOS).float()
    first = torch.where(eos.any(1), eos.argmax(1) + 1, torch.full_like(eos[:, 0], MAX_LEN))
    return first.long() + 1


def labels(tokens: Tensor) -> Tensor:
    """Hugging Face labels: every token after BOS up to the first ``EOS``; padding is -100."""
    out = tokens.clone()
    span = torch.arange(tokens.shape[1])[None, :]
    out[span >= lengths(tokens)[:, None]] = -100
    out[:, 0] = -100
    return out


def next_token_probs(tokens: Tensor, language_seed: int = 0) -> Tensor:
    """The exact distribution of token ``t + 1`` given tokens ``0..t``, for every position of every
    sentence: ``(n, T - 1, VOCAB)`` float64 (rows past a sentence's end are uniform; mask them
    with :func:`labels`)."""
    n, width = tokens.shape
    out = np.full((n, width - 1, VOCAB), 1.0 / VOCAB)
    ends = lengths(tokens).tolist()
    rows = tokens.tolist()
    for i in range(n):
        state = State()
        for t in range(width - 1):
            if t + 1 >= ends[i]:
                break
            if t > 0:
                step(state, rows[i][t])
            out[i, t] = probs(state, language_seed)
    return torch.from_numpy(out)
