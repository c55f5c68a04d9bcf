"""The k largest of many values, in order, without sorting them all: one piece for every
"top k, ties by position" in recagent (a model's recommendations, the most popular items
that pass a filter, exact vector search)."""

from __future__ import annotations

import numpy as np


def top_k(values: np.ndarray, k: int, *, later_first: bool = False) -> np.ndarray:
    """Positions of the `k` largest `values`, largest first; equal values in position order
    (earlier first, or later first). Only the values that can reach the top k are sorted,
    every one equal to the k-th kept, so a million values take milliseconds and ties at the
    cut are decided by position, never by the partition."""
    n = len(values)
    k = min(max(k, 0), n)
    positions = np.arange(n)
    if 0 < k < n:
        kth = np.partition(values, n - k)[n - k]
        positions = np.flatnonzero(values >= kth)
    ties = -positions if later_first else positions
    return positions[np.lexsort((ties, -values[positions]))][:k]


__all__ = ["top_k"]
