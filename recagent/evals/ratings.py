"""The `ratings` protocol: predict the stars a user gave a held-out item (after Kang et al. 2023,
"Do LLMs understand user preferences?").

A case is a sampled user's split target (valid: the second-to-last item, test: the last) with
the rating they gave it. Every predictor learns from the training part of the leave-one-out
split only (each user's items but the last two):

global-mean, item-mean, biases, mf   the classical predictors (`recagent.models.ratings`)
llm-zero      the LLM, told the titles the user watched last and the item (no ratings)
llm-few       the LLM, also shown `FEW_SHOT` of the user's own most recent ratings

An answer the LLM writes without a readable 1-5 number is counted (`errors.unparsed`) and
predicted as the global mean, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from recagent.config import LLMConfig
from recagent.data.dataset import Dataset
from recagent.data.split import Split
from recagent.errors import ConfigError
from recagent.models.ratings import CLASSICAL, ClassicalPredictor
from recagent.prompts.registry import PromptRegistry

if TYPE_CHECKING:  # the CLI reads this module's names without loading LangChain
    from langchain_core.language_models import BaseChatModel

    from recagent.evals.env import EvalEnv

PREDICTORS = (*CLASSICAL, "llm-zero", "llm-few")
LLM_PREDICTORS = ("llm-zero", "llm-few")
FEW_SHOT = 5
HISTORY_SHOWN = 10
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
    fitted = ClassicalPredictor(name, t)
    return lambda case, dataset: Prediction(
        fitted.stars(case.user_idx, dataset.catalog.idx(case.item))
    )


__all__ = [
    "FEW_SHOT",
    "LLM_PREDICTORS",
    "POSITIVE",
    "PREDICTORS",
    "LLMPredictor",
    "Prediction",
    "Predictor",
    "RatingCase",
    "make_predictor",
    "parse_stars",
    "rating_cases",
]
