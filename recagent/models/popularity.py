"""Popularity: every history gets the same scores, the item's interaction count.

The baseline every sequential model must beat, and the fallback scorer when no SASRec
checkpoint exists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recagent.data.dataset import Dataset
from recagent.models.base import Scorer, Times


class PopularityScorer(Scorer):
    """Scores = interaction counts (float), the same for every history."""

    name = "popularity"

    def __init__(self, item_ids: Sequence[str], counts: np.ndarray) -> None:
        super().__init__(item_ids)
        if counts.shape != (len(self.item_ids) + 1,):
            raise ValueError(f"counts must have n_items + 1 = {len(self.item_ids) + 1} entries")
        self.scores = counts.astype(np.float32)
        self.scores[0] = -np.inf

    @classmethod
    def from_dataset(cls, dataset: Dataset, train_only: bool = True) -> PopularityScorer:
        """Counts over the training part of the leave-one-out split (what a model may learn
        from, so evaluation stays fair), or over every interaction (`train_only=False`, for
        recommending to real users)."""
        n = dataset.n_items
        if train_only:
            seqs = dataset.split.train_sequences()
            flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
            counts = np.bincount(flat, minlength=n + 1)
        else:
            counts = dataset.popularity
        return cls(dataset.catalog.item_ids, counts)

    def score_batch(self, histories: Sequence[np.ndarray], times: Times = None) -> np.ndarray:
        return np.tile(self.scores, (len(histories), 1))


__all__ = ["PopularityScorer"]
