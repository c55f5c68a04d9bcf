"""Summary statistics of a prepared dataset (`recagent data stats`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

if TYPE_CHECKING:
    from recagent.data.dataset import Dataset

PERCENTILES = (5, 25, 50, 75, 95, 99)


class DatasetStats(BaseModel):
    users: int
    items: int
    items_with_interactions: int
    interactions: int
    density: float
    sequence_length: dict[str, float]
    has_ratings: bool
    has_timestamps: bool
    genres: int
    first_timestamp: int | None = None
    last_timestamp: int | None = None


def dataset_stats(dataset: Dataset) -> DatasetStats:
    inter = dataset.interactions
    lengths = inter.lengths()
    active_items = int((inter.item_counts(len(dataset.catalog))[1:] > 0).sum())
    seq = {"min": float(lengths.min()), "mean": round(float(lengths.mean()), 2)}
    # interpolated percentiles carry float noise (13.850000000000023): two decimals say it
    seq |= {f"p{p}": round(float(np.percentile(lengths, p)), 2) for p in PERCENTILES}
    seq["max"] = float(lengths.max())
    return DatasetStats(
        users=inter.n_users,
        items=len(dataset.catalog),
        items_with_interactions=active_items,
        interactions=len(inter),
        density=round(len(inter) / max(1, inter.n_users * active_items), 6),
        sequence_length=seq,
        has_ratings=inter.has_ratings,
        has_timestamps=inter.has_timestamps,
        genres=len(dataset.catalog.genres),
        first_timestamp=int(inter.timestamp.min()) if inter.has_timestamps else None,
        last_timestamp=int(inter.timestamp.max()) if inter.has_timestamps else None,
    )


__all__ = ["DatasetStats", "dataset_stats"]
