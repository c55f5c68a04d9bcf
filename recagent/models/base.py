"""The `Scorer` contract every scoring model implements.

A history is a list of external item ids in time order, so an unseen user or a chat session
can be scored without retraining. Batched scoring for evaluation works on internal
`item_idx` arrays instead (never both in one signature).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from recagent.errors import RecagentError


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


class UnknownItemError(RecagentError):
    """Item ids that are not in the model's catalog."""

    def __init__(self, unknown: Sequence[str], what: str) -> None:
        self.unknown = list(unknown)
        shown = ", ".join(repr(i) for i in self.unknown[:5])
        more = f" and {len(self.unknown) - 5} more" if len(self.unknown) > 5 else ""
        super().__init__(f"unknown {what} item id(s): {shown}{more}")


class IdScorer(ABC):
    """`score` and `recommend` on top of `score_batch`, mapping item ids to item_idx.

    Subclasses set `name` and implement `score_batch`; `item_ids[i]` is the id of
    item_idx i + 1 (the catalog order the model was built on)."""

    name: str

    def __init__(self, item_ids: Sequence[str]) -> None:
        self.item_ids = list(item_ids)
        self._idx = {item_id: i + 1 for i, item_id in enumerate(self.item_ids)}

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def to_idx(self, item_ids: Iterable[str], what: str = "") -> np.ndarray:
        """item_idx of `item_ids` in order; `UnknownItemError` names any unknown id."""
        ids = list(item_ids)
        unknown = [i for i in ids if i not in self._idx]
        if unknown:
            raise UnknownItemError(unknown, what or "given")
        return np.array([self._idx[i] for i in ids], dtype=np.int64)

    @abstractmethod
    def score_batch(self, histories: Sequence[np.ndarray]) -> np.ndarray: ...

    def score(self, history: Sequence[str], candidates: Sequence[str] | None = None) -> np.ndarray:
        row = self.score_batch([self.to_idx(history, "history")])[0]
        if candidates is None:
            return row
        return row[self.to_idx(candidates, "candidate")]

    def recommend(
        self, history: Sequence[str], k: int, exclude: Iterable[str] | None = None
    ) -> list[tuple[str, float]]:
        row = self.score(history).astype(np.float64)
        row[np.isnan(row)] = -np.inf
        row[0] = -np.inf
        skip = [self._idx[i] for i in exclude or () if i in self._idx]
        allowed = np.ones(len(row), dtype=bool)
        allowed[0] = False
        allowed[skip] = False
        idx = np.flatnonzero(allowed)
        order = idx[np.lexsort((idx, -row[idx]))][: max(k, 0)]  # best first, ties by item_idx
        return [(self.item_ids[i - 1], float(row[i])) for i in order]


__all__ = ["IdScorer", "Scorer", "UnknownItemError"]
