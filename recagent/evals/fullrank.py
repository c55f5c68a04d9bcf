"""Full-ranking evaluation of any `Scorer` on the leave-one-out split: every catalog item
competes, the user's history is excluded, one target per user (see `metrics`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recagent.data.split import EvalCase
from recagent.evals.metrics import target_ranks
from recagent.models.base import Scorer


def rank_cases(
    scorer: Scorer,
    cases: Sequence[EvalCase],
    batch_size: int = 1024,
    advance: Callable[..., None] | None = None,
) -> np.ndarray:
    """Rank of each case's target (order of `cases`; inf = miss), scored `batch_size` users
    at a time; `advance(n)` is called after each batch."""
    ranks = []
    for start in range(0, len(cases), batch_size):
        chunk = cases[start : start + batch_size]
        histories = [c.history for c in chunk]
        scores = scorer.score_batch(histories)
        ranks.append(target_ranks(scores, [c.target for c in chunk], histories))
        if advance is not None:
            advance(len(chunk))
    return np.concatenate(ranks) if ranks else np.zeros(0)


__all__ = ["rank_cases"]
