"""Item-to-item evaluation: does an item's nearest neighbours hold the items the same people
go on to consume?

Held-out pairs come from the valid or the test interactions, which no item representation
trains on: for each evaluated user, the split's target item paired with each of the last
`window` distinct items before it (for valid: from the training sequence; for test: up to and
including the valid item). A pair is a hit at K when the target is among the K nearest items
of the query item (the query itself excluded; ties count against the target). A user's value
is the mean over their pairs, so every user weighs the same; intervals are percentile
bootstraps over users, and a difference between two spaces is bootstrapped per user (paired).

Slices are by the target's training interactions: cold (fewer than 5), low (5 to 49), high
(50 or more).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel

from recagent.data.dataset import Dataset
from recagent.data.split import Split
from recagent.evals.beyond import bootstrap_ci

KS = (10, 50, 100)
COLD_BELOW = 5
HIGH_FROM = 50
SLICES = ("all", "cold", "low", "high")
CHUNK = 512

ScoreRows = Callable[[np.ndarray], np.ndarray]  # query item_idx (Q,) -> scores (Q, n + 1)


@dataclass(frozen=True)
class HeldOutPairs:
    """(query, target) item_idx pairs and the user each belongs to."""

    queries: np.ndarray
    targets: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.queries)


def _pair_up(
    events: Iterable[tuple[int, list[int], int]], window: int, skip: frozenset[int] = frozenset()
) -> HeldOutPairs:
    """Each (user, history oldest first, target) event: the target paired with each of the
    last `window` distinct history items (never the target itself, nor an item in `skip`)."""
    queries, targets, users = [], [], []
    for user, history, target in events:
        recent = [i for i in dict.fromkeys(history[::-1]) if i != target and i not in skip]
        for q in recent[:window]:
            queries.append(q)
            targets.append(target)
            users.append(user)
    return HeldOutPairs(
        np.asarray(queries, dtype=np.int64),
        np.asarray(targets, dtype=np.int64),
        np.asarray(users, dtype=np.int64),
    )


def heldout_pairs(dataset: Dataset, split: Split, window: int = 10) -> HeldOutPairs:
    """The split's target of each user, paired with the items before it."""
    cases = dataset.split.cases(split)
    return _pair_up(((c.user_idx, c.history.tolist(), c.target) for c in cases), window)


def withheld_items(dataset: Dataset, share: float = 0.1, seed: int = 0) -> np.ndarray:
    """A popularity-stratified `share` of the items (item_idx): items sorted by training
    interactions, one drawn from every consecutive block of 1 / share of them."""
    counts = train_counts(dataset)[1:]
    order = np.argsort(counts, kind="stable") + 1
    block = max(round(1 / share), 1)
    rng = np.random.default_rng(seed)
    picks = [rng.choice(order[i : i + block]) for i in range(0, len(order), block)]
    return np.sort(np.asarray(picks, dtype=np.int64))


def withheld_pairs(dataset: Dataset, withheld: np.ndarray, window: int = 10) -> HeldOutPairs:
    """Every later consumption of a withheld item, paired with the up to `window` distinct
    other items before it in that person's whole sequence (withheld ones skipped): how well
    a space places items it never saw consumed next to the items people had before them."""
    hidden = frozenset(withheld.tolist())
    events = (
        (u, seq[:t], item)
        for u in range(1, dataset.interactions.n_users + 1)
        for seq in [dataset.split.full_history(u).tolist()]
        for t, item in enumerate(seq)
        if item in hidden
    )
    return _pair_up(events, window, skip=hidden)


def without(pairs: HeldOutPairs, items: np.ndarray) -> HeldOutPairs:
    """`pairs` with every pair touching `items` left out."""
    keep = ~(np.isin(pairs.queries, items) | np.isin(pairs.targets, items))
    return HeldOutPairs(pairs.queries[keep], pairs.targets[keep], pairs.users[keep])


def train_counts(dataset: Dataset) -> np.ndarray:
    """Training interactions per item_idx."""
    counts = np.zeros(dataset.n_items + 1, dtype=np.int64)
    for seq in dataset.split.train_sequences():
        np.add.at(counts, seq, 1)
    return counts


def slice_of(counts: np.ndarray) -> np.ndarray:
    """The popularity slice name of each count."""
    return np.where(counts < COLD_BELOW, "cold", np.where(counts < HIGH_FROM, "low", "high"))


def target_ranks(score_rows: ScoreRows, pairs: HeldOutPairs) -> np.ndarray:
    """The 1-based rank of each pair's target among all items but the query (ties count
    against the target)."""
    ranks = np.empty(len(pairs), dtype=np.int64)
    unique, inverse = np.unique(pairs.queries, return_inverse=True)
    for start in range(0, len(unique), CHUNK):
        block = unique[start : start + CHUNK]
        scores = np.asarray(score_rows(block), dtype=np.float64)
        scores[:, 0] = -np.inf
        scores[np.arange(len(block)), block] = -np.inf
        rows = np.flatnonzero((inverse >= start) & (inverse < start + len(block)))
        local = inverse[rows] - start
        target = scores[local, pairs.targets[rows]]
        ranks[rows] = (scores[local] >= target[:, None]).sum(axis=1)
    return ranks


def vector_scores(vectors: np.ndarray) -> ScoreRows:
    """Cosine similarity rows of unit-length `vectors` (row = item_idx)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    return lambda q: matrix[q] @ matrix.T


def cooccurrence_scores(matrix: sp.csr_matrix) -> ScoreRows:
    """Item-CF: the pair scores of the query's row (0 for items never consumed with it)."""
    return lambda q: matrix[q].toarray()


class SpaceResult(BaseModel):
    """One representation's item-to-item recall, per slice: {slice: {metric: value}} and
    the bootstrap interval of each, plus how many users each slice has."""

    name: str
    metrics: dict[str, dict[str, float]]
    intervals: dict[str, dict[str, tuple[float, float]]]
    users: dict[str, int]


class Comparison(BaseModel):
    """`name` minus `baseline`, per slice, paired over users."""

    name: str
    baseline: str
    metric: str
    diff: dict[str, float]
    intervals: dict[str, tuple[float, float]]


@dataclass
class PerUser:
    """Per-user hit rates at each K, and each user's slice."""

    users: np.ndarray
    hits: dict[int, np.ndarray]
    slices: np.ndarray


def hit_rates(ranks: np.ndarray, pairs: HeldOutPairs, k: int) -> np.ndarray:
    """Each user's share of their pairs whose target ranks in the top `k` (users in sorted
    order)."""
    _, inverse = np.unique(pairs.users, return_inverse=True)
    hits = np.bincount(inverse, weights=(ranks <= k).astype(np.float64))
    return hits / np.bincount(inverse).astype(np.float64)


def per_user(ranks: np.ndarray, pairs: HeldOutPairs, counts: np.ndarray) -> PerUser:
    users, inverse = np.unique(pairs.users, return_inverse=True)
    hits = {k: hit_rates(ranks, pairs, k) for k in KS}
    target_of = np.zeros(len(users), dtype=np.int64)
    target_of[inverse] = pairs.targets
    return PerUser(users, hits, slice_of(counts[target_of]))


def summarise(name: str, rows: PerUser, seed: int = 0) -> SpaceResult:
    metrics: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    users: dict[str, int] = {}
    for s in SLICES:
        keep = np.ones(len(rows.users), dtype=bool) if s == "all" else rows.slices == s
        users[s] = int(keep.sum())
        metrics[s], intervals[s] = {}, {}
        for k in KS:
            values = rows.hits[k][keep]
            metrics[s][f"R@{k}"] = float(values.mean()) if len(values) else float("nan")
            intervals[s][f"R@{k}"] = bootstrap_ci(values, seed=seed)
    return SpaceResult(name=name, metrics=metrics, intervals=intervals, users=users)


def compare(
    name: str, rows: PerUser, baseline: str, base: PerUser, k: int = 50, seed: int = 0
) -> Comparison:
    if not np.array_equal(rows.users, base.users):
        raise ValueError("the two spaces were evaluated on different users")
    diff, intervals = {}, {}
    for s in SLICES:
        keep = np.ones(len(rows.users), dtype=bool) if s == "all" else rows.slices == s
        d = rows.hits[k][keep] - base.hits[k][keep]
        diff[s] = float(d.mean()) if len(d) else float("nan")
        intervals[s] = bootstrap_ci(d, seed=seed)
    return Comparison(name=name, baseline=baseline, metric=f"R@{k}", diff=diff, intervals=intervals)


def recall_at(score_rows: ScoreRows, pairs: HeldOutPairs, k: int = 50) -> float:
    """Mean per-user Recall@k (what training selects on)."""
    return float(hit_rates(target_ranks(score_rows, pairs), pairs, k).mean())


def evaluate_spaces(
    dataset: Dataset,
    spaces: Sequence[tuple[str, ScoreRows]],
    pairs: HeldOutPairs,
    seed: int = 0,
) -> tuple[list[SpaceResult], list[Comparison]]:
    """Every space summarised on `pairs` (`heldout_pairs`, `withheld_pairs`), and each
    compared with the first (the baseline)."""
    counts = train_counts(dataset)
    rows = [(name, per_user(target_ranks(score, pairs), pairs, counts)) for name, score in spaces]
    results = [summarise(name, r, seed) for name, r in rows]
    base_name, base = rows[0]
    comparisons = [compare(name, r, base_name, base, seed=seed) for name, r in rows[1:]]
    return results, comparisons


__all__ = [
    "KS",
    "SLICES",
    "Comparison",
    "HeldOutPairs",
    "SpaceResult",
    "cooccurrence_scores",
    "evaluate_spaces",
    "heldout_pairs",
    "recall_at",
    "target_ranks",
    "train_counts",
    "vector_scores",
    "withheld_items",
    "withheld_pairs",
    "without",
]
