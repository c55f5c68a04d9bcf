"""Evaluation protocols: who is evaluated, on what history, against which target.

full-rank     leave-one-out on the shared split; rank over all items, history excluded.
candidates    N users (seeded); the true next item plus 19 random unseen items, shuffled
              (or, with candidates_from="hybrid", the hybrid retriever's top 20, where the
              target may be missing); the pipeline ranks only those.
conversation  a simulated user who knows the target (never says its title) chats with the
              agent for up to 5 turns.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel

from recagent.data.dataset import Dataset
from recagent.data.split import Split

Protocol = Literal["full-rank", "candidates", "conversation"]
N_CANDIDATES = 20


class Case(BaseModel):
    """One user's evaluation example, in external ids."""

    user_idx: int
    user_id: str
    history: list[str]
    target: str
    candidates: list[str] | None = None


def sample_users(dataset: Dataset, split: Split, users: int | None, seed: int) -> np.ndarray:
    """Evaluation users: all of them, or `users` drawn with `seed` (sorted, so order is
    stable)."""
    eligible = dataset.split.eval_users
    if users is None or users >= len(eligible):
        return eligible
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, size=users, replace=False))


def base_cases(dataset: Dataset, split: Split, users: int | None, seed: int) -> list[Case]:
    ids = dataset.catalog.ids_at
    cases = []
    for u in sample_users(dataset, split, users, seed):
        c = dataset.split.case(int(u), split)
        cases.append(
            Case(
                user_idx=int(u),
                user_id=dataset.interactions.user_id_at(int(u)),
                history=ids(c.history),
                target=dataset.catalog.id_at(c.target),
            )
        )
    return cases


def random_candidates(dataset: Dataset, case: Case, seed: int, n: int = N_CANDIDATES) -> list[str]:
    """The target plus n - 1 items the user has not seen, shuffled; the same for a given
    (seed, user) whatever else is evaluated."""
    rng = np.random.default_rng([seed, case.user_idx])
    taken = {dataset.catalog.idx(i) for i in case.history} | {dataset.catalog.idx(case.target)}
    pool = np.setdiff1d(np.arange(1, dataset.n_items + 1), np.fromiter(taken, dtype=np.int64))
    chosen = rng.choice(pool, size=min(n - 1, len(pool)), replace=False)
    items = [case.target, *dataset.catalog.ids_at(chosen)]
    rng.shuffle(items)
    return items


def shuffled(items: list[str], seed: int, user_idx: int) -> list[str]:
    out = list(items)
    np.random.default_rng([seed, user_idx, 1]).shuffle(out)
    return out


__all__ = [
    "N_CANDIDATES",
    "Case",
    "Protocol",
    "base_cases",
    "random_candidates",
    "sample_users",
    "shuffled",
]
