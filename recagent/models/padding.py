"""Item sequences as tensors: left padding, and the shift from a window to (inputs,
targets). Item_idx 0 is padding everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def left_pad(histories: Sequence[np.ndarray | Sequence[int]], max_len: int) -> torch.Tensor:
    """Stack item_idx histories into a (B, L) int64 tensor, keeping each one's last `max_len`
    items, left-padded with 0 to the longest (at least 1 column, so an empty history works)."""
    rows = [np.asarray(h, dtype=np.int64)[-max_len:] for h in histories]
    length = max([len(r) for r in rows] + [1])
    out = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, length - len(r) :] = r
    return torch.from_numpy(out)


def shift(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of left-padded windows (B, L + 1): `targets[b, t]` is the item after
    `inputs[b, t]`, 0 where the input is padding (the first item is never a target)."""
    inputs = items[:, :-1]
    return inputs, items[:, 1:].masked_fill(inputs == 0, 0)


__all__ = ["left_pad", "shift"]
