"""Rating predictors learned from the training ratings of the leave-one-out split (each user's
items but the last two): the classical side of the ratings protocol, and what `judge` ("is X a
good pick for me?") predicts stars with.

global-mean   the mean training rating
item-mean     the item's mean training rating, shrunk to the global mean (10 pseudo-ratings)
biases        global mean + user bias + item bias (regularised alternating least squares)
mf            biases + a small matrix factorisation (rank 16, alternating least squares,
              weighted-lambda regularisation)

`choose_on_valid` picks the one with the lowest RMSE on every user's valid rating (cached in
the workspace per dataset fingerprint). A person the data does not know gets no user terms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.workspace import Workspace, atomic_write_json

CLASSICAL = ("global-mean", "item-mean", "biases", "mf")
ITEM_SHRINK = 10.0
CHOICE_FILE = "rating-predictor.json"


@dataclass
class Training:
    """The training ratings as (user_idx, item_idx, rating) arrays."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_users: int
    n_items: int
    mean: float = field(init=False)

    def __post_init__(self) -> None:
        self.mean = float(self.ratings.mean()) if len(self.ratings) else 3.0


def training(dataset: Dataset) -> Training:
    data = dataset.interactions
    if not data.has_ratings:
        raise ConfigError(f"{dataset.name!r} has no ratings: the ratings protocol needs them")
    users, items, ratings = [], [], []
    for u in range(1, data.n_users + 1):
        seq = dataset.split.train_sequence(u)
        stars = data.ratings_of(u)[: len(seq)]
        keep = ~np.isnan(stars)
        users.append(np.full(int(keep.sum()), u))
        items.append(seq[keep])
        ratings.append(stars[keep])
    return Training(
        np.concatenate(users).astype(np.int64),
        np.concatenate(items).astype(np.int64),
        np.concatenate(ratings).astype(np.float64),
        data.n_users,
        dataset.n_items,
    )


def _biases(t: Training, reg: float = 5.0, sweeps: int = 10) -> tuple[np.ndarray, np.ndarray]:
    bu, bi = np.zeros(t.n_users + 1), np.zeros(t.n_items + 1)
    for _ in range(sweeps):
        resid = t.ratings - t.mean - bu[t.users]
        bi = np.bincount(t.items, resid, t.n_items + 1) / (
            np.bincount(t.items, minlength=t.n_items + 1) + reg
        )
        resid = t.ratings - t.mean - bi[t.items]
        bu = np.bincount(t.users, resid, t.n_users + 1) / (
            np.bincount(t.users, minlength=t.n_users + 1) + reg
        )
    return bu, bi


def _groups(keys: np.ndarray, n: int) -> list[tuple[int, np.ndarray]]:
    """(key, rows with that key) for every key that has rows."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n + 1))
    return [(k, order[bounds[k] : bounds[k + 1]]) for k in range(n) if bounds[k + 1] > bounds[k]]


@dataclass
class ClassicalPredictor:
    """global-mean, item-mean, biases and mf, fitted once on the training ratings."""

    name: str
    t: Training
    seed: int = 0
    rank: int = 16
    sweeps: int = 8
    reg: float = 0.1

    def __post_init__(self) -> None:
        t = self.t
        counts = np.bincount(t.items, minlength=t.n_items + 1)
        sums = np.bincount(t.items, t.ratings, t.n_items + 1)
        self.item_mean = (sums + ITEM_SHRINK * t.mean) / (counts + ITEM_SHRINK)
        if self.name in ("biases", "mf"):
            self.bu, self.bi = _biases(t)
        if self.name == "mf":
            self._fit_mf()

    def _fit_mf(self) -> None:
        """Alternating least squares on what the biases leave, weighted-lambda regularised."""
        t, rng = self.t, np.random.default_rng(self.seed)
        resid = t.ratings - t.mean - self.bu[t.users] - self.bi[t.items]
        self.p = np.zeros((t.n_users + 1, self.rank))
        self.q = rng.normal(0, 0.1, (t.n_items + 1, self.rank))
        by_user = _groups(t.users, t.n_users + 1)
        by_item = _groups(t.items, t.n_items + 1)
        eye = np.eye(self.rank)
        for _ in range(self.sweeps):
            for fixed, solved, groups, other in (
                (self.q, self.p, by_user, t.items),
                (self.p, self.q, by_item, t.users),
            ):
                for key, rows in groups:
                    f = fixed[other[rows]]
                    solved[key] = np.linalg.solve(
                        f.T @ f + self.reg * len(rows) * eye, f.T @ resid[rows]
                    )

    def stars(self, user_idx: int | None, item_idx: int) -> float:
        """Predicted stars (0.5-5); `user_idx` None: a person the training data lacks."""
        t = self.t
        if self.name == "global-mean":
            value = t.mean
        elif self.name == "item-mean":
            value = float(self.item_mean[item_idx])
        else:
            value = t.mean + self.bi[item_idx] + (self.bu[user_idx] if user_idx else 0.0)
            if self.name == "mf" and user_idx:
                value += float(self.p[user_idx] @ self.q[item_idx])
        return float(np.clip(value, 0.5, 5.0))


def valid_rmse(dataset: Dataset, name: str, t: Training) -> float:
    """RMSE of predictor `name` on every eval user's valid rating."""
    data, split = dataset.interactions, dataset.split
    errors = []
    predictor = ClassicalPredictor(name, t)
    for u in split.eval_users:
        case = split.case(int(u), "valid")
        truth = float(data.ratings_of(int(u))[len(case.history)])
        if not np.isnan(truth):
            errors.append(predictor.stars(int(u), case.target) - truth)
    return float(np.sqrt(np.mean(np.square(errors)))) if errors else float("nan")


@dataclass
class RatingModel:
    """The chosen predictor, fitted, with every classical predictor's valid RMSE."""

    predictor: ClassicalPredictor
    valid: dict[str, float]

    @property
    def name(self) -> str:
        return self.predictor.name

    def stars(self, dataset: Dataset, user_id: str | None, item_id: str) -> float:
        user = dataset.interactions.user_idx_of(user_id) if user_id else None
        return self.predictor.stars(user, dataset.catalog.idx(item_id))


def choose_on_valid(workspace: Workspace, dataset: Dataset) -> RatingModel | None:
    """The classical predictor with the lowest valid RMSE, fitted (None without ratings)."""
    if not dataset.interactions.has_ratings:
        return None
    t = training(dataset)
    path = workspace.models_dir(dataset.name) / CHOICE_FILE
    valid: dict[str, float] = {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("data") == dataset.fingerprint:
            valid = {str(k): float(v) for k, v in saved["valid_rmse"].items()}
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    if set(valid) != set(CLASSICAL):
        valid = {name: valid_rmse(dataset, name, t) for name in CLASSICAL}
        atomic_write_json(path, {"data": dataset.fingerprint, "valid_rmse": valid})
    best = min(CLASSICAL, key=lambda n: (np.nan_to_num(valid[n], nan=np.inf), CLASSICAL.index(n)))
    return RatingModel(ClassicalPredictor(best, t), valid)


__all__ = [
    "CLASSICAL",
    "ClassicalPredictor",
    "RatingModel",
    "Training",
    "choose_on_valid",
    "training",
    "valid_rmse",
]
