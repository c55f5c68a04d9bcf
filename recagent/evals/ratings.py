"""The `ratings` protocol: predict the stars a user gave a held-out item (after Kang et al. 2023,
"Do LLMs understand user preferences?").

A case is a sampled user's split target (valid: the second-to-last item, test: the last) with
the rating they gave it. Every predictor learns from the training part of the leave-one-out
split only (each user's items but the last two):

global-mean   the mean training rating
item-mean     the item's mean training rating, shrunk to the global mean (10 pseudo-ratings)
biases        global mean + user bias + item bias (regularised alternating least squares)
mf            biases + a small matrix factorisation (rank 16, alternating least squares)
llm-zero      the LLM, told the titles the user watched last and the item (no ratings)
llm-few       the LLM, also shown `FEW_SHOT` of the user's own most recent ratings

An answer the LLM writes without a readable 1-5 number is counted (`errors.unparsed`) and
predicted as the global mean, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from recagent.config import LLMConfig
from recagent.data.dataset import Dataset
from recagent.data.split import Split
from recagent.errors import ConfigError
from recagent.prompts.registry import PromptRegistry

if TYPE_CHECKING:  # the CLI reads this module's names without loading LangChain
    from langchain_core.language_models import BaseChatModel

    from recagent.evals.env import EvalEnv

PREDICTORS = ("global-mean", "item-mean", "biases", "mf", "llm-zero", "llm-few")
LLM_PREDICTORS = ("llm-zero", "llm-few")
FEW_SHOT = 5
HISTORY_SHOWN = 10
ITEM_SHRINK = 10.0
POSITIVE = 4.0
_NUMBER = re.compile(r"(?<![\d.])([0-5](?:\.\d+)?)(?![\d.])")


class RatingCase(BaseModel):
    user_idx: int
    user_id: str
    item: str
    rating: float
    history: list[str]
    history_ratings: list[float]


@dataclass
class Prediction:
    stars: float
    parsed: bool = True
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None


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


def rating_cases(dataset: Dataset, split: Split, users: int | None, seed: int) -> list[RatingCase]:
    """The sampled users' split targets that carry a rating."""
    from recagent.evals.protocols import sample_users

    data, catalog = dataset.interactions, dataset.catalog
    cases = []
    for u in sample_users(dataset, split, users, seed):
        case = dataset.split.case(int(u), split)
        stars = data.ratings_of(int(u))
        rating = float(stars[len(case.history)])
        if np.isnan(rating):
            continue
        train_len = len(dataset.split.train_sequence(int(u)))
        cases.append(
            RatingCase(
                user_idx=int(u),
                user_id=data.user_id_at(int(u)),
                item=catalog.id_at(case.target),
                rating=rating,
                history=catalog.ids_at(case.history[:train_len]),
                history_ratings=[float(s) for s in stars[:train_len]],
            )
        )
    return cases


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

    def stars(self, user_idx: int, item_idx: int) -> float:
        t = self.t
        if self.name == "global-mean":
            value = t.mean
        elif self.name == "item-mean":
            value = float(self.item_mean[item_idx])
        else:
            value = t.mean + self.bu[user_idx] + self.bi[item_idx]
            if self.name == "mf":
                value += float(self.p[user_idx] @ self.q[item_idx])
        return float(np.clip(value, 0.5, 5.0))

    def __call__(self, case: RatingCase, dataset: Dataset) -> Prediction:
        return Prediction(self.stars(case.user_idx, dataset.catalog.idx(case.item)))


def parse_stars(text: str) -> float | None:
    """The first number from 0 to 5 in the answer (a 1-5 rating, halves allowed)."""
    for match in _NUMBER.finditer(text):
        value = float(match.group(1))
        if 0.5 <= value <= 5.0:
            return value
    return None


@dataclass
class LLMPredictor:
    """The LLM, zero-shot (`shots` = 0) or shown the user's own latest ratings."""

    name: str
    model: BaseChatModel
    model_name: str
    registry: PromptRegistry
    cfg: LLMConfig
    fallback: float
    shots: int = 0
    domain: str = "movies"

    def __call__(self, case: RatingCase, dataset: Dataset) -> Prediction:
        from recagent.agent.llm import complete

        catalog = dataset.catalog
        shown = case.history[-HISTORY_SHOWN:]
        examples = (
            [
                f"{catalog[i].label}: {s:g} stars"
                for i, s in zip(case.history, case.history_ratings, strict=True)
                if not np.isnan(s)
            ][-self.shots :]
            if self.shots
            else []
        )
        item = catalog[case.item]
        prompt = self.registry.render(
            "rating_predict",
            domain=self.domain,
            history="\n".join(catalog[i].label for i in shown) or "(nothing yet)",
            examples="\n".join(examples),
            item=f"{item.label} | {', '.join(item.genres)}",
        )
        text, reply = complete(self.model, prompt, self.cfg)
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        stars = parse_stars(text)
        return Prediction(
            stars=self.fallback if stars is None else stars,
            parsed=stars is not None,
            llm_calls=1,
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            model=self.model_name,
        )


Predictor = Callable[[RatingCase, Dataset], Prediction]


def make_predictor(name: str, env: EvalEnv) -> Predictor:
    if name not in PREDICTORS:
        raise ConfigError(
            f"the ratings protocol runs predictors: {', '.join(PREDICTORS)} (not {name!r})"
        )
    t = env.rating_training
    if name in LLM_PREDICTORS:
        return LLMPredictor(
            name,
            env.llm,
            env.llm.model_name,
            env.registry,
            env.settings.llm,
            fallback=t.mean,
            shots=FEW_SHOT if name == "llm-few" else 0,
            domain=env.settings.agent.domain,
        )
    return ClassicalPredictor(name, t)


__all__ = [
    "FEW_SHOT",
    "LLM_PREDICTORS",
    "POSITIVE",
    "PREDICTORS",
    "ClassicalPredictor",
    "LLMPredictor",
    "Prediction",
    "Predictor",
    "RatingCase",
    "make_predictor",
    "parse_stars",
    "rating_cases",
    "training",
]
