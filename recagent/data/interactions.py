"""User-item interactions, stored user by user in time order (one row per interaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recagent.manifest import Fingerprint


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interactions as parallel arrays sorted by (user, time, tie-break).

    `user_ids[u - 1]` is the external id of `user_idx = u` (0 is padding). Rows of one user
    are contiguous, from `offsets[u - 1]` to `offsets[u]`, and already in sequence order.
    `rating` is NaN where the source had none; `timestamp` is the file position where it
    had none (`has_timestamps` False).
    """

    user_ids: np.ndarray  # (n_users,) str
    user_idx: np.ndarray  # (n,) int32, 1-based
    item_idx: np.ndarray  # (n,) int32, 1-based
    rating: np.ndarray  # (n,) float32
    timestamp: np.ndarray  # (n,) int64
    has_ratings: bool = True
    has_timestamps: bool = True
    _user_index: dict[str, int] = field(init=False, repr=False)
    offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        counts = np.bincount(self.user_idx, minlength=len(self.user_ids) + 1)[1:]
        offsets = np.zeros(len(self.user_ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(
            self, "_user_index", {str(u): i + 1 for i, u in enumerate(self.user_ids)}
        )

    def __len__(self) -> int:
        return len(self.item_idx)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def user_idx_of(self, user_id: str) -> int | None:
        return self._user_index.get(user_id)

    def user_id_at(self, user_idx: int) -> str:
        return str(self.user_ids[user_idx - 1])

    def _rows(self, user_idx: int) -> slice:
        return slice(int(self.offsets[user_idx - 1]), int(self.offsets[user_idx]))

    def sequence(self, user_idx: int) -> np.ndarray:
        """Item indices of one user in sequence order."""
        return self.item_idx[self._rows(user_idx)]

    def ratings_of(self, user_idx: int) -> np.ndarray:
        return self.rating[self._rows(user_idx)]

    def timestamps_of(self, user_idx: int) -> np.ndarray:
        return self.timestamp[self._rows(user_idx)]

    def sequences(self) -> list[np.ndarray]:
        """Every user's sequence; element `u - 1` belongs to `user_idx = u`."""
        return np.split(self.item_idx, self.offsets[1:-1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def item_counts(self, n_items: int) -> np.ndarray:
        """Interactions per item_idx (index 0 = padding, always 0)."""
        return np.bincount(self.item_idx, minlength=n_items + 1)

    def fingerprint(self, fp: Fingerprint) -> Fingerprint:
        fp.json([str(u) for u in self.user_ids])
        for arr in (self.user_idx, self.item_idx, self.rating, self.timestamp):
            fp.array(arr)
        return fp.json([self.has_ratings, self.has_timestamps])

    def save(self, path: Path) -> None:
        with path.open("wb") as fh:
            np.savez(
                fh,
                user_ids=np.asarray(self.user_ids, dtype=str),
                user_idx=self.user_idx,
                item_idx=self.item_idx,
                rating=self.rating,
                timestamp=self.timestamp,
                flags=np.array([self.has_ratings, self.has_timestamps]),
            )

    @classmethod
    def load(cls, path: Path) -> Interactions:
        with np.load(path, allow_pickle=False) as data:
            flags = data["flags"]
            return cls(
                user_ids=data["user_ids"],
                user_idx=data["user_idx"],
                item_idx=data["item_idx"],
                rating=data["rating"],
                timestamp=data["timestamp"],
                has_ratings=bool(flags[0]),
                has_timestamps=bool(flags[1]),
            )


__all__ = ["Interactions"]
