"""Ranking metrics as pure functions over numpy arrays (a leaf: numpy only, so `models/`
and `evals/` both use it without importing each other).

Everything starts from the 1-based rank of each user's target item. `target_ranks` computes it
from a score matrix under the full-ranking protocol: every catalog item competes, items the
user has already seen are removed, and the rank is pessimistic, so a model cannot gain from
broken or constant scores:

- a NaN target score is a miss (rank = inf);
- another item with a NaN score, or the same score as the target, ranks above the target.

Per-user values (`hit`, `ndcg`, `reciprocal_rank`) let a harness keep per-user results;
`summarize` gives the means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_KS = (10, 20, 50)


def target_ranks(
    scores: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    exclude: Sequence[Iterable[int]] | None = None,
) -> np.ndarray:
    """1-based rank of each row's target (float; inf = miss).

    `scores` is (U, N + 1): one row per user, column j = item_idx j, column 0 = padding (never
    ranked). `targets` holds one item_idx per row. `exclude[u]` lists the item_idx removed from
    row u's ranking (the user's history); the target itself is always ranked, so a target that
    repeats a history item can still be found.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be (users, items + 1), got shape {s.shape}")
    t_idx = np.asarray(targets, dtype=np.int64)
    if t_idx.shape != (s.shape[0],):
        raise ValueError(f"{len(t_idx)} targets for {s.shape[0]} score rows")
    if len(t_idx) and (t_idx.min() < 1 or t_idx.max() >= s.shape[1]):
        raise ValueError("targets must be item_idx in 1..n_items")
    rows = np.arange(len(t_idx))
    t = s[rows, t_idx]
    ranked = np.ones(s.shape, dtype=bool)
    ranked[:, 0] = False
    if exclude is not None:
        if len(exclude) != len(t_idx):
            raise ValueError(f"{len(exclude)} exclusion lists for {len(t_idx)} rows")
        for r, items in enumerate(exclude):
            seen = items if isinstance(items, np.ndarray) else np.fromiter(items, np.int64)
            ranked[r, seen.astype(np.int64, copy=False)] = False
    ranked[rows, t_idx] = False  # count the competitors, not the target
    with np.errstate(invalid="ignore"):
        above = (s >= t[:, None]) | np.isnan(s)
    ranks = 1.0 + (above & ranked).sum(axis=1)
    ranks[np.isnan(t)] = np.inf
    return ranks


def hit(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user HR@k (= Recall@k with one target): 1.0 if the target is in the top k."""
    return (np.asarray(ranks) <= k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k with one relevant item: 1 / log2(rank + 1) inside the top k, else 0."""
    r = np.asarray(ranks, dtype=np.float64)
    out = np.zeros_like(r)
    top = r <= k
    out[top] = 1.0 / np.log2(r[top] + 1.0)
    return out


def reciprocal_rank(ranks: np.ndarray) -> np.ndarray:
    """Per-user reciprocal rank (0 for a miss); its mean is MRR over the full ranking."""
    return 1.0 / np.asarray(ranks, dtype=np.float64)


def per_user(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """Every metric per user: HR@k and NDCG@k for each k, and MRR."""
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"HR@{k}"] = hit(ranks, k)
    for k in ks:
        out[f"NDCG@{k}"] = ndcg(ranks, k)
    out["MRR"] = reciprocal_rank(ranks)
    return out


def recall(items: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of the `gold` items in the first `k` of `items` (NaN when there is no gold)."""
    wanted = set(gold)
    if not wanted:
        return float("nan")
    return len(wanted & set(items[:k])) / len(wanted)


def ndcg_of_list(items: Sequence[str], relevant: set[str], k: int) -> float:
    """NDCG@k of one list against several relevant items, each worth 1."""
    gains = sum(1.0 / np.log2(r + 2) for r, i in enumerate(items[:k]) if i in relevant)
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(relevant))))
    return float(gains / ideal) if ideal else 0.0


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC of `scores` for the boolean labels `positive` (tied scores count half); None
    when only one class is present."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    values, inverse = np.unique(np.asarray(scores, dtype=float), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(values))
    mid = np.cumsum(counts) - (counts - 1) / 2  # average 1-based rank of each distinct value
    ranks = mid[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def summarize(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean of every metric in `per_user` over the users (an empty `ranks` is an error)."""
    if len(ranks) == 0:
        raise ValueError("no users to evaluate")
    return {name: float(values.mean()) for name, values in per_user(ranks, ks).items()}


__all__ = [
    "DEFAULT_KS",
    "hit",
    "ndcg",
    "per_user",
    "recall",
    "reciprocal_rank",
    "summarize",
    "target_ranks",
]
