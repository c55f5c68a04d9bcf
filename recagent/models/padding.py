"""Item sequences as tensors: left padding, the shift from a window to (inputs, targets),
and the input embedding of a left-padded sequence. Item_idx 0 is padding everywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


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


def embed_left_padded(
    seq: torch.Tensor, item_emb: nn.Embedding, pos_emb: nn.Embedding, dropout: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input (B, L, D) of left-padded `seq` (B, L) and its real-item mask (B, L): the item
    embedding x sqrt(D) plus the embedding of the position counted from the first real item
    (so left padding never shifts a history's positions), dropped out, zero on padding.
    `ValueError` when `seq` is longer than the position table."""
    if seq.shape[1] > pos_emb.num_embeddings:
        raise ValueError(f"sequence length {seq.shape[1]} > max_len {pos_emb.num_embeddings}")
    real = seq > 0  # (B, L)
    pos = (real.cumsum(1) - 1).clamp(min=0)  # 0 at the first real item
    x = item_emb(seq) * math.sqrt(item_emb.embedding_dim) + pos_emb(pos)
    return dropout(x) * real[..., None], real


__all__ = ["embed_left_padded", "left_pad", "shift"]
