"""BST's training samples: (the behaviours before an interaction, a candidate item, clicked?).

For each user's training interactions k (the most recent `positives_per_user` of them, each
with at least one behaviour before it): the up to `history` items strictly before k, the
target item_k with label 1, and `negatives` unseen items with label 0, drawn afresh every
epoch: a share `hard_share` from the frozen retriever's best `hard_pool` items for that
prefix (so training looks like the candidates it will rerank), the rest uniformly. Only the
training part of the split is read: no valid or test item ever appears.

Time gaps ("positions") are computed once: bucket(t(target) - t(v_i)) with HSTU's log
buckets; where the data has no timestamps, or for a share `time_dropout` of samples, the
distance from the target instead (`recagent.models.bst.position_gaps`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recagent.models.base import Scorer
from recagent.models.hstu import TIME_BUCKETS, time_buckets
from recagent.models.padding import left_pad

HARD_CHUNK = 512  # prefixes scored by the retriever at once


def hard_pools(
    retriever: Scorer, prefixes: list[np.ndarray], targets: np.ndarray, size: int
) -> np.ndarray:
    """(P, size) the retriever's best items for each prefix, never a prefix item or the
    prefix's target (best first)."""
    out = np.zeros((len(prefixes), size), dtype=np.int64)
    for start in range(0, len(prefixes), HARD_CHUNK):
        chunk = prefixes[start : start + HARD_CHUNK]
        scores = retriever.score_batch(chunk).astype(np.float64)
        scores[:, 0] = -np.inf
        for r, prefix in enumerate(chunk):
            scores[r, prefix] = -np.inf
            scores[r, targets[start + r]] = -np.inf
        top = np.argpartition(-scores, size, axis=1)[:, :size]
        order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
        out[start : start + len(chunk)] = np.take_along_axis(top, order, 1)
    return out


class BSTData:
    """One epoch of BST samples at a time (see the module docstring). A batch is `(history
    (B, S), gaps (B, S), candidate (B,), label (B,))` for `BST.batch_loss`."""

    def __init__(
        self,
        histories: torch.Tensor,
        gaps: torch.Tensor,
        targets: np.ndarray,
        hard: np.ndarray,
        n_items: int,
        negatives: int,
        hard_share: float,
    ) -> None:
        self.histories = histories  # (P, S) item_idx, left-padded
        self.gaps = gaps  # (P, S) gap ids
        self.targets = targets  # (P,) item_idx
        self.hard = hard  # (P, H) hard negatives
        self.n_items = n_items
        self.negatives = negatives
        self.hard_count = round(negatives * hard_share) if hard.shape[1] else 0
        self.notes: list[str] = []
        self._rows = self._cands = self._labels = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.targets) * (1 + self.negatives)

    def epoch(self, rng: np.random.Generator, batch_size: int) -> list[np.ndarray]:
        """Draw this epoch's negatives; return shuffled batches of sample indices."""
        p = len(self.targets)
        rows = np.repeat(np.arange(p), self.negatives)
        uniform = rng.integers(1, self.n_items + 1, size=(p, self.negatives))
        if self.hard_count:
            pick = rng.integers(0, self.hard.shape[1], size=(p, self.hard_count))
            uniform[:, : self.hard_count] = np.take_along_axis(self.hard, pick, 1)
        clash = uniform == self.targets[:, None]
        uniform[clash] = uniform[clash] % self.n_items + 1  # never the positive itself
        self._rows = np.concatenate([np.arange(p), rows])
        self._cands = np.concatenate([self.targets, uniform.reshape(-1)])
        self._labels = np.concatenate([np.ones(p), np.zeros(p * self.negatives)])
        order = rng.permutation(len(self._rows))
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        prefix = torch.as_tensor(self._rows[rows])
        return (
            self.histories[prefix],
            self.gaps[prefix],
            torch.as_tensor(self._cands[rows]),
            torch.as_tensor(self._labels[rows], dtype=torch.float32),
        )


def samples(
    dataset: Any,
    history: int,
    positives_per_user: int | None,
) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray] | None, np.ndarray | None]:
    """(prefixes, targets, prefix times, target times) of every positive training sample."""
    sequences = dataset.split.train_sequences()
    all_times = dataset.split.train_times()
    prefixes: list[np.ndarray] = []
    targets: list[int] = []
    times: list[np.ndarray] = []
    when: list[int] = []
    for u, seq in enumerate(sequences):
        first = 1 if positives_per_user is None else max(1, len(seq) - positives_per_user)
        for k in range(first, len(seq)):
            prefixes.append(seq[:k])
            targets.append(int(seq[k]))
            if all_times is not None:
                times.append(all_times[u][max(0, k - history) : k])
                when.append(int(all_times[u][k]))
    if all_times is None:
        return prefixes, np.array(targets, dtype=np.int64), None, None
    return prefixes, np.array(targets, dtype=np.int64), times, np.array(when, dtype=np.int64)


def position_gaps(history: torch.Tensor) -> torch.Tensor:
    """(B, S) gap ids without timestamps: the distance from the target (1 = the newest
    behaviour), after the time buckets; 0 on padding."""
    s = history.shape[1]
    distance = torch.arange(s, 0, -1, device=history.device)  # S .. 1
    return (TIME_BUCKETS + distance).expand_as(history).masked_fill(history == 0, 0)


def gap_ids(
    history: torch.Tensor, times: list[np.ndarray] | None, request: np.ndarray | None
) -> torch.Tensor:
    """(P, S) gap ids of left-padded histories: time buckets of t(request) - t(v_i), or
    (without times) the distance-from-target ids."""
    if times is None or request is None:
        return position_gaps(history)
    stamps = left_pad(times, history.shape[1])
    stamps = torch.cat(
        [torch.zeros(len(stamps), history.shape[1] - stamps.shape[1], dtype=torch.int64), stamps],
        dim=1,
    )
    gaps = time_buckets(torch.as_tensor(request)[:, None] - stamps)
    return gaps.masked_fill(history == 0, 0)


__all__ = ["BSTData", "gap_ids", "hard_pools", "position_gaps", "samples"]
