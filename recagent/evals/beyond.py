"""Beyond accuracy: what the lists look like and what they cost.

All functions are pure: they take the recommended lists (external ids) and catalog facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np


def coverage(lists: Sequence[Sequence[str]], n_items: int) -> float:
    """Share of the catalog that appears in at least one list."""
    return len({i for lst in lists for i in lst}) / max(1, n_items)


def intra_list_diversity(lst: Sequence[str], genres: Mapping[str, frozenset[str]]) -> float | None:
    """Mean pairwise genre distance (1 - Jaccard) inside one list; None below 2 items, and
    when none of them has a genre (a catalog without genres: nothing to measure)."""
    sets = [genres.get(i, frozenset()) for i in lst]
    if len(sets) < 2 or not any(sets):
        return None
    dists = []
    for a, b in combinations(sets, 2):
        union = a | b
        dists.append(1.0 - (len(a & b) / len(union) if union else 1.0))
    return float(np.mean(dists))


def popularity_percentiles(counts: Mapping[str, float]) -> dict[str, float]:
    """Each item's popularity percentile in (0, 1]: 1.0 = the most popular item."""
    ids = list(counts)
    values = np.array([counts[i] for i in ids], dtype=float)
    order = values.argsort(kind="stable")
    pct = np.empty(len(ids))
    pct[order] = (np.arange(len(ids)) + 1) / max(1, len(ids))
    return dict(zip(ids, pct.tolist(), strict=True))


def mean_over_lists(lists: Sequence[Sequence[str]], values: Mapping[str, float]) -> float | None:
    """Mean of `values` over every recommended item (None when nothing was recommended)."""
    picked = [values[i] for lst in lists for i in lst if i in values]
    return float(np.mean(picked)) if picked else None


def novelty_scores(counts: Mapping[str, float], n_users: int) -> dict[str, float]:
    """Self-information -log2(share of users who interacted with the item)."""
    return {i: float(-np.log2(max(c, 1.0) / max(1, n_users))) for i, c in counts.items()}


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def bootstrap_ci(
    values: Sequence[float], seed: int = 0, n: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


__all__ = [
    "bootstrap_ci",
    "coverage",
    "intra_list_diversity",
    "mean_over_lists",
    "novelty_scores",
    "percentile",
    "popularity_percentiles",
]
