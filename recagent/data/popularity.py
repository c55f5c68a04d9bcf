"""How popular each item is: all-time interaction counts, or "popular lately", where each
interaction counts less the longer before the data's last interaction it happened (its
weight halves every `half_life_days`). A new user who says nothing about their taste is
better served by what people watch now than by the classics everyone rated years ago."""

from __future__ import annotations

import numpy as np

from recagent.data.dataset import Dataset
from recagent.data.split import MIN_EVAL_LENGTH

SECONDS_PER_DAY = 86_400


def popularity(
    dataset: Dataset, train_only: bool = False, half_life_days: float | None = None
) -> np.ndarray:
    """Popularity per item_idx (index 0, padding, is 0). `train_only`: count only the
    training part of the leave-one-out split (what an evaluated model may know).
    `half_life_days`: recency-weighted counts (datasets without timestamps: plain counts)."""
    inter = dataset.interactions
    keep = np.ones(len(inter), dtype=bool)
    if train_only:
        lengths = inter.lengths()
        ends = inter.offsets[1:]
        held = ends[lengths >= MIN_EVAL_LENGTH]
        keep[held - 1] = False
        keep[held - 2] = False
    items = inter.item_idx[keep]
    n = dataset.n_items + 1
    if half_life_days is None or not inter.has_timestamps or not keep.any():
        return np.bincount(items, minlength=n).astype(np.float64)
    stamps = inter.timestamp[keep].astype(np.float64)
    age_days = (stamps.max() - stamps) / SECONDS_PER_DAY
    weights = np.power(0.5, age_days / half_life_days)
    return np.bincount(items, weights=weights, minlength=n)


__all__ = ["popularity"]
