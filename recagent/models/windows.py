"""Training windows: each user's training sequence cut into left-padded windows, and the
epoch's batches of windows of similar length.

A window holds up to `max_len + 1` consecutive items (`items[:, :-1]` are read, `items[:, 1:]`
predicted); `times` aligned with it where the data has timestamps. A long history gives one
window ending at its last item (`last`) or several (`all`): windows end every `step` items
back from the last (step = max_len: consecutive windows whose targets cover every item once;
a smaller step overlaps them, the sliding-window augmentation of LRURec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from recagent.models.padding import left_pad, shift

WindowMode = Literal["last", "all"]


@dataclass(frozen=True)
class Windows:
    items: torch.Tensor  # (W, max_len + 1) item_idx, left-padded with 0
    times: torch.Tensor | None  # (W, max_len + 1) int64 timestamps (0 in padding), or None
    lengths: np.ndarray  # (W,) real items per window (>= 2)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The windows `rows`, cropped to the longest of them (left padding: the last
        columns hold the data)."""
        width = int(self.lengths[rows].max())
        index = torch.as_tensor(rows)
        times = None if self.times is None else self.times[index, -width:]
        return self.items[index, -width:], times


def window_ends(length: int, max_len: int, mode: WindowMode, step: int | None) -> list[int]:
    """Where each window of a sequence of `length` items ends (exclusive)."""
    if mode == "last":
        return [length]
    return list(range(length, 1, -(step or max_len)))


def make_windows(
    sequences: list[np.ndarray],
    max_len: int,
    mode: WindowMode = "all",
    step: int | None = None,
    times: list[np.ndarray] | None = None,
) -> Windows:
    """Every training window of `sequences` (and of their `times`, when given)."""
    rows: list[np.ndarray] = []
    time_rows: list[np.ndarray] = []
    for u, seq in enumerate(sequences):
        for end in window_ends(len(seq), max_len, mode, step):
            if end >= 2:
                start = max(0, end - max_len - 1)
                rows.append(seq[start:end])
                if times is not None:
                    time_rows.append(times[u][start:end])
    items = left_pad(rows, max_len + 1) if rows else torch.zeros((0, 2), dtype=torch.int64)
    stamped = left_pad(time_rows, max_len + 1) if times is not None and rows else None
    return Windows(items, stamped, np.array([len(r) for r in rows], dtype=np.int64))


def training_windows(
    sequences: list[np.ndarray], max_len: int, windows: WindowMode
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(inputs, targets, lengths): left-padded (W, max_len) windows where `targets[w, t]` is
    the item after `inputs[w, t]`; lengths count the inputs."""
    made = make_windows(sequences, max_len, windows)
    inputs, targets = shift(made.items)
    return inputs, targets, made.lengths - 1


def length_batches(
    rng: np.random.Generator, lengths: np.ndarray, size: int, copies: int = 1
) -> list[np.ndarray]:
    """One epoch of batches, each of windows of similar length (less padding to compute).

    Windows are shuffled, sorted by length with random tie order, cut into batches, and the
    batches shuffled: every window `copies` times per epoch (once by default), in a new batch
    order each time."""
    order = np.tile(np.arange(len(lengths)), copies)[rng.permutation(len(lengths) * copies)]
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class WindowData:
    """The training data of a next-item model: its windows, batched by similar length. A
    batch is `(items, times)` for the model's `batch_loss`. An epoch holds each window
    `copies` times (a model that masks at random, like BERT4Rec, masks each copy anew: the
    original's "dupe factor")."""

    def __init__(self, windows: Windows, copies: int = 1) -> None:
        self.windows = windows
        self.copies = copies
        self.notes: list[str] = []  # what training should say about the data (e.g. no times)

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def targets(self) -> int:
        """How many items the windows predict (each window's items after its first)."""
        return int((self.windows.lengths - 1).sum())

    def epoch(self, rng: np.random.Generator, batch_size: int) -> list[np.ndarray]:
        return length_batches(rng, self.windows.lengths, batch_size, self.copies)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.windows.batch(rows)


def window_data(
    dataset: Any,
    max_len: int,
    mode: WindowMode,
    step: int | None,
    with_times: bool,
    copies: int = 1,
) -> WindowData:
    """The windows of every user's training sequence in `dataset` (with timestamps if asked
    and the data has them), each `copies` times per epoch."""
    times = dataset.split.train_times() if with_times else None
    windows = make_windows(dataset.split.train_sequences(), max_len, mode, step, times)
    return WindowData(windows, copies)


__all__ = [
    "WindowData",
    "WindowMode",
    "Windows",
    "length_batches",
    "make_windows",
    "training_windows",
    "window_data",
    "window_ends",
]
