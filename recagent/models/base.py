"""The `Scorer` contract every scoring model implements.

A history is a list of external item ids in time order, so an unseen user or a chat session
can be scored without retraining. Batched scoring for evaluation works on internal
`item_idx` arrays instead (never both in one signature).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, history: Sequence[str], candidates: Sequence[str] | None = None) -> np.ndarray:
        """Scores (higher is better). With `candidates`: one score per candidate, in order.
        Without: one per item_idx over the whole catalog (index 0, padding, is -inf)."""
        ...

    def recommend(
        self, history: Sequence[str], k: int, exclude: Iterable[str] | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (item_id, score), never an item in `exclude` (history items are not excluded
        unless passed)."""
        ...

    def score_batch(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item for each history of item_idx: shape (len(histories),
        n_items + 1), column 0 = -inf."""
        ...


__all__ = ["Scorer"]
