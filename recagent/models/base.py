"""The one scorer contract every model implements, and the optional capabilities some have.

`Scorer` scores the next item of any history:

- a history is a list of external item ids in time order (`score`, `recommend`), so an unseen
  user or a chat session is scored without retraining;
- batched scoring for evaluation works on internal `item_idx` arrays (`score_batch` over the
  whole catalog, `score_candidates_batch` over given candidates), never both kinds of id in
  one signature;
- `times`, where given, are each history's timestamps followed by the request time (one more
  than the history); models that do not read time ignore them.

A subclass implements `score_batch`; the rest is built on it. A model that cannot afford the
whole catalog (a reranker) overrides `score_candidates_batch` as well.

Capabilities are runtime-checkable protocols, so a tool asks what a scorer can do instead of
which class it is: `ReadsSequence` (it conditions on the order of the history and reads its
last `max_len` items), `ExplainsScores` (which history items drove a score), `Reranks` (it
reorders a pool another model retrieved).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from recagent.errors import RecagentError
from recagent.topk import top_k

Times = Sequence[np.ndarray | None] | None


class UnknownItemError(RecagentError):
    """Item ids that are not in the model's catalog."""

    def __init__(self, unknown: Sequence[str], what: str) -> None:
        self.unknown = list(unknown)
        shown = ", ".join(repr(i) for i in self.unknown[:5])
        more = f" and {len(self.unknown) - 5} more" if len(self.unknown) > 5 else ""
        super().__init__(f"unknown {what} item id(s): {shown}{more}")


class Scorer(ABC):
    """Scores (higher is better) of items as the next pick after a history.

    `item_ids[i]` is the id of item_idx i + 1 (the catalog order the model was built on);
    item_idx 0 is padding and always scores -inf."""

    name: str

    def __init__(self, item_ids: Sequence[str]) -> None:
        self.item_ids = list(item_ids)
        self._idx = {item_id: i + 1 for i, item_id in enumerate(self.item_ids)}
        # items this scorer knows from their text alone, and why (a text-aligned model:
        # "no training interactions" or "added after training")
        self.text_only: dict[str, str] = {}

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
    def score_batch(self, histories: Sequence[np.ndarray], times: Times = None) -> np.ndarray:
        """Scores of every item for each history of item_idx: (len(histories), n_items + 1),
        column 0 = -inf."""

    def score_candidates_batch(
        self,
        histories: Sequence[np.ndarray],
        candidates: Sequence[np.ndarray],
        times: Times = None,
    ) -> list[np.ndarray]:
        """Scores of `candidates[b]` (item_idx) for `histories[b]`, one array per history."""
        rows = self.score_batch(histories, times)
        return [row[np.asarray(c, dtype=np.int64)] for row, c in zip(rows, candidates, strict=True)]

    def score(self, history: Sequence[str], candidates: Sequence[str] | None = None) -> np.ndarray:
        """With `candidates`: one score per candidate, in order. Without: one per item_idx
        over the whole catalog (index 0, padding, is -inf)."""
        idx = self.to_idx(history, "history")
        if candidates is None:
            return self.score_batch([idx])[0]
        return self.score_candidates_batch([idx], [self.to_idx(candidates, "candidate")])[0]

    def recommend(
        self, history: Sequence[str], k: int, exclude: Iterable[str] | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (item_id, score), never an item in `exclude` (history items are not
        excluded unless passed); ties go to the lower item_idx."""
        row = self.score(history).astype(np.float64)
        row[np.isnan(row)] = -np.inf
        row[0] = -np.inf
        skip = [self._idx[i] for i in exclude or () if i in self._idx]
        allowed = np.ones(len(row), dtype=bool)
        allowed[0] = False
        allowed[skip] = False
        idx = np.flatnonzero(allowed)
        order = idx[top_k(row[idx], k)]  # best first, ties by item_idx
        return [(self.item_ids[i - 1], float(row[i])) for i in order]


IdScorer = Scorer  # the name this contract had before the models shared it


@runtime_checkable
class ReadsSequence(Protocol):
    """Conditions on the order of the history; reads its last `max_len` items."""

    @property
    def max_len(self) -> int: ...


@runtime_checkable
class ExplainsScores(Protocol):
    """Says which history items drove its scores (for explanations)."""

    def attended(
        self, history: Sequence[str], top: int = 3, candidate: str | None = None
    ) -> list[tuple[str, float]]:
        """The `top` history items that weighed most (for `candidate`, where the model scores
        each candidate against the history), with their weight, strongest first."""
        ...


@runtime_checkable
class Reranks(Protocol):
    """Reorders a pool: its own scores cover the `pool` best items of `retriever`; the rest of
    the catalog keeps the retriever's order below them."""

    pool: int

    @property
    def retriever(self) -> Scorer: ...


__all__ = [
    "ExplainsScores",
    "IdScorer",
    "ReadsSequence",
    "Reranks",
    "Scorer",
    "Times",
    "UnknownItemError",
]
