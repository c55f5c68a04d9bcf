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

Recall alone cannot tell a space that finds look-alikes people also liked from one that finds
what the same people liked whatever it is ("more like Star Wars" answering Fargo). Beside it,
each pair's query item is compared with its own top `LOOK_K` neighbours: their mean genre
overlap (Jaccard of the genre sets; items without genres left out) and mean year distance,
averaged per user like recall.
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
LOOK_K = 10
GENRE = f"genre@{LOOK_K}"  # mean Jaccard genre overlap of the query and its top 10
YEARS = f"years@{LOOK_K}"  # mean absolute year distance of the query and its top 10
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


@dataclass(frozen=True)
class Scan:
    """Per pair: the target's rank, and the query's `LOOK_K` nearest items (row per pair)."""

    ranks: np.ndarray
    neighbours: np.ndarray


def scan(score_rows: ScoreRows, pairs: HeldOutPairs, top: int = LOOK_K) -> Scan:
    """Every pair's target rank among all items but the query (1-based; ties count against
    the target) and the query's `top` nearest items, from one pass over the score rows."""
    return scan_many(lambda block: [("", score_rows(block))], pairs, top)[""]


def scan_many(
    block_scores: Callable[[np.ndarray], Iterable[tuple[str, np.ndarray]]],
    pairs: HeldOutPairs,
    top: int = LOOK_K,
) -> dict[str, Scan]:
    """`scan` of several rankings at once: `block_scores(queries)` yields each ranking's
    (name, score rows) for a block of query items, one at a time (so they can share work,
    such as the similarities they all blend, without all being in memory)."""
    unique, inverse = np.unique(pairs.queries, return_inverse=True)
    ranks: dict[str, np.ndarray] = {}
    nearest: dict[str, np.ndarray] = {}
    for start in range(0, len(unique), CHUNK):
        block = unique[start : start + CHUNK]
        rows = np.flatnonzero((inverse >= start) & (inverse < start + len(block)))
        local = inverse[rows] - start
        for name, raw in block_scores(block):
            scores = np.array(raw, dtype=np.float64)
            scores[:, 0] = -np.inf
            scores[np.arange(len(block)), block] = -np.inf
            if name not in ranks:
                ranks[name] = np.empty(len(pairs), dtype=np.int64)
                nearest[name] = np.zeros((len(unique), top), dtype=np.int64)
            n = min(top, scores.shape[1] - 2)
            if n > 0:
                part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
                best = np.take_along_axis(scores, part, axis=1)
                order = np.argsort(-best, axis=1, kind="stable")
                nearest[name][start : start + len(block), :n] = np.take_along_axis(
                    part, order, axis=1
                )
            target = scores[local, pairs.targets[rows]]
            ranks[name][rows] = (scores[local] >= target[:, None]).sum(axis=1)
    return {name: Scan(ranks[name], nearest[name][inverse]) for name in ranks}


def target_ranks(score_rows: ScoreRows, pairs: HeldOutPairs) -> np.ndarray:
    """The 1-based rank of each pair's target among all items but the query (ties count
    against the target)."""
    return scan(score_rows, pairs, top=1).ranks


def genre_matrix(dataset: Dataset) -> np.ndarray:
    """Row item_idx: which of the catalog's genres (`catalog.genres` order) the item has."""
    catalog = dataset.catalog
    names = {g: j for j, g in enumerate(catalog.genres)}
    out = np.zeros((dataset.n_items + 1, len(names)), dtype=bool)
    for item in catalog:
        for g in item.genres:
            out[catalog.idx(item.item_id), names[g]] = True
    return out


def mean_known(values: np.ndarray) -> float:
    """The mean of the values that are not NaN (NaN when none is)."""
    known = values[~np.isnan(values)]
    return float(known.mean()) if len(known) else float("nan")


class LookAlike:
    """How alike an item and its neighbours are: genre overlap and year distance."""

    def __init__(self, dataset: Dataset) -> None:
        self.genres = genre_matrix(dataset)
        years = dataset.catalog.years().astype(np.float64)
        self.years = np.where(years < 0, np.nan, years)

    @property
    def has_genres(self) -> bool:
        return bool(self.genres.any())

    def of(self, queries: np.ndarray, neighbours: np.ndarray) -> dict[str, np.ndarray]:
        """Per query (row of `neighbours`): mean genre Jaccard and mean year distance over its
        neighbours (a neighbour without genres, or without a year, is left out of that mean;
        NaN where none is left)."""
        q = self.genres[queries][:, None, :]
        n = self.genres[neighbours]
        union = (q | n).sum(axis=2).astype(np.float64)
        inter = (q & n).sum(axis=2).astype(np.float64)
        both = q.any(axis=2) & n.any(axis=2)  # an item without genres cannot be compared
        with np.errstate(invalid="ignore", divide="ignore"):
            jaccard = np.where(both, inter / np.maximum(union, 1), np.nan)
            distance = np.abs(self.years[queries][:, None] - self.years[neighbours])
            return {GENRE: _nanmean(jaccard), YEARS: _nanmean(distance)}


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN (NaN for a row of NaN only), without a warning."""
    counts = (~np.isnan(values)).sum(axis=1)
    sums = np.nansum(values, axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


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
    """Per-user values of every metric (R@k, and the look-alike ones where measured), and each
    user's slice."""

    users: np.ndarray
    values: dict[str, np.ndarray]
    slices: np.ndarray


def hit_rates(ranks: np.ndarray, pairs: HeldOutPairs, k: int) -> np.ndarray:
    """Each user's share of their pairs whose target ranks in the top `k` (users in sorted
    order)."""
    return _per_user_mean((ranks <= k).astype(np.float64), pairs)


def _per_user_mean(values: np.ndarray, pairs: HeldOutPairs) -> np.ndarray:
    """Each user's mean of per-pair `values` (users in sorted order; NaN values left out, NaN
    for a user with none)."""
    _, inverse = np.unique(pairs.users, return_inverse=True)
    known = ~np.isnan(values)
    sums = np.bincount(inverse, weights=np.where(known, values, 0.0))
    counts = np.bincount(inverse, weights=known.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def per_user(
    found: Scan | np.ndarray,
    pairs: HeldOutPairs,
    counts: np.ndarray,
    look: LookAlike | None = None,
    ks: Sequence[int] = KS,
) -> PerUser:
    """`found`: a `scan` (or only its ranks); `look`: adds the look-alike metrics."""
    ranks = found.ranks if isinstance(found, Scan) else found
    users, inverse = np.unique(pairs.users, return_inverse=True)
    values = {f"R@{k}": hit_rates(ranks, pairs, k) for k in ks}
    if look is not None and isinstance(found, Scan):
        for name, per_pair in look.of(pairs.queries, found.neighbours).items():
            values[name] = _per_user_mean(per_pair, pairs)
    target_of = np.zeros(len(users), dtype=np.int64)
    target_of[inverse] = pairs.targets
    return PerUser(users, values, slice_of(counts[target_of]))


def summarise(name: str, rows: PerUser, seed: int = 0) -> SpaceResult:
    metrics: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    users: dict[str, int] = {}
    for s in SLICES:
        keep = np.ones(len(rows.users), dtype=bool) if s == "all" else rows.slices == s
        users[s] = int(keep.sum())
        metrics[s], intervals[s] = {}, {}
        for metric, per in rows.values.items():
            values = per[keep]
            metrics[s][metric] = mean_known(values)
            intervals[s][metric] = bootstrap_ci(values[~np.isnan(values)], seed=seed)
    return SpaceResult(name=name, metrics=metrics, intervals=intervals, users=users)


def compare(
    name: str,
    rows: PerUser,
    baseline: str,
    base: PerUser,
    k: int = 50,
    seed: int = 0,
    metric: str | None = None,
) -> Comparison:
    """`name` minus `baseline` on `metric` (default R@k), paired over users."""
    if not np.array_equal(rows.users, base.users):
        raise ValueError("the two spaces were evaluated on different users")
    metric = metric or f"R@{k}"
    diff, intervals = {}, {}
    for s in SLICES:
        keep = np.ones(len(rows.users), dtype=bool) if s == "all" else rows.slices == s
        d = rows.values[metric][keep] - base.values[metric][keep]
        diff[s] = mean_known(d)
        intervals[s] = bootstrap_ci(d[~np.isnan(d)], seed=seed)
    return Comparison(name=name, baseline=baseline, metric=metric, diff=diff, intervals=intervals)


def recall_at(score_rows: ScoreRows, pairs: HeldOutPairs, k: int = 50) -> float:
    """Mean per-user Recall@k (what training selects on)."""
    return float(hit_rates(target_ranks(score_rows, pairs), pairs, k).mean())


def evaluate_spaces(
    dataset: Dataset,
    spaces: Sequence[tuple[str, ScoreRows]],
    pairs: HeldOutPairs,
    seed: int = 0,
    versus: Sequence[tuple[str, str, str]] = (),
) -> tuple[list[SpaceResult], list[Comparison]]:
    """Every space summarised on `pairs` (`heldout_pairs`, `withheld_pairs`), recall and
    look-alike metrics, and each compared with the first (the baseline) on R@50; `versus`:
    more paired comparisons, (space, baseline, metric)."""
    counts = train_counts(dataset)
    look = LookAlike(dataset)
    rows = [(name, per_user(scan(score, pairs), pairs, counts, look)) for name, score in spaces]
    results = [summarise(name, r, seed) for name, r in rows]
    base_name, base = rows[0]
    comparisons = [compare(name, r, base_name, base, seed=seed) for name, r in rows[1:]]
    by_name = dict(rows)
    for name, baseline, metric in versus:
        comparisons.append(
            compare(name, by_name[name], baseline, by_name[baseline], seed=seed, metric=metric)
        )
    return results, comparisons


__all__ = [
    "GENRE",
    "KS",
    "LOOK_K",
    "SLICES",
    "YEARS",
    "Comparison",
    "HeldOutPairs",
    "LookAlike",
    "Scan",
    "SpaceResult",
    "cooccurrence_scores",
    "evaluate_spaces",
    "genre_matrix",
    "heldout_pairs",
    "mean_known",
    "recall_at",
    "scan",
    "scan_many",
    "target_ranks",
    "train_counts",
    "vector_scores",
    "withheld_items",
    "withheld_pairs",
    "without",
]
