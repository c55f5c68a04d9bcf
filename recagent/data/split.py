"""The leave-one-out split every model and evaluation shares.

For a user with sequence ``s`` (time order, ties broken as the dataset was prepared):
``train = s[:-2]``, ``valid`` target ``s[-2]`` (history ``s[:-2]``), ``test`` target ``s[-1]``
(history ``s[:-1]``). Users with fewer than 3 interactions only contribute to training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recagent.data.interactions import Interactions

Split = Literal["valid", "test"]
MIN_EVAL_LENGTH = 3


@dataclass(frozen=True)
class EvalCase:
    """One evaluation example: what the model sees and the item it should rank first."""

    user_idx: int
    history: np.ndarray  # item_idx, time order
    target: int  # item_idx
    # timestamps of the history items and, last, of the target (the request time): only when
    # the data has real timestamps (time-aware models such as HSTU read them)
    times: np.ndarray | None = None


class LeaveOneOut:
    """Leave-one-out split over prepared interactions."""

    def __init__(self, interactions: Interactions) -> None:
        self.interactions = interactions
        self._sequences = interactions.sequences()
        self._times = (
            np.split(interactions.timestamp, interactions.offsets[1:-1])
            if interactions.has_timestamps
            else None
        )
        lengths = interactions.lengths()
        self.eval_users = np.flatnonzero(lengths >= MIN_EVAL_LENGTH) + 1

    def train_sequence(self, user_idx: int) -> np.ndarray:
        """Items a model may train on: everything but the valid and test targets."""
        seq = self._sequences[user_idx - 1]
        return seq[:-2] if len(seq) >= MIN_EVAL_LENGTH else seq

    def train_sequences(self) -> list[np.ndarray]:
        """Training sequence of every user (element `u - 1` is `user_idx = u`)."""
        return [self.train_sequence(u) for u in range(1, len(self._sequences) + 1)]

    def case(self, user_idx: int, split: Split) -> EvalCase:
        seq = self._sequences[user_idx - 1]
        if len(seq) < MIN_EVAL_LENGTH:
            raise ValueError(f"user_idx {user_idx} has {len(seq)} interactions; no {split} case")
        cut = len(seq) - (2 if split == "valid" else 1)
        times = None if self._times is None else self._times[user_idx - 1][: cut + 1]
        return EvalCase(user_idx=user_idx, history=seq[:cut], target=int(seq[cut]), times=times)

    def cases(self, split: Split) -> list[EvalCase]:
        """One case per user with at least 3 interactions, in user_idx order."""
        return [self.case(int(u), split) for u in self.eval_users]

    def train_times(self) -> list[np.ndarray] | None:
        """Timestamps aligned with `train_sequences()` (None when the data has none)."""
        if self._times is None:
            return None
        return [t[: len(self.train_sequence(u + 1))] for u, t in enumerate(self._times)]

    def full_history(self, user_idx: int) -> np.ndarray:
        """Everything the user did (what chat uses as the user's history)."""
        return self._sequences[user_idx - 1]


__all__ = ["MIN_EVAL_LENGTH", "EvalCase", "LeaveOneOut", "Split"]
