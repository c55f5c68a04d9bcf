"""Full-ranking evaluation of any `Scorer` on the leave-one-out split: every catalog item
competes, the user's history is excluded, one target per user (see `recagent.metrics`).
Training validates with it; `recagent.evals` reports with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recagent.data.split import EvalCase
from recagent.metrics import target_ranks
from recagent.models.base import Scorer

SCORES_PER_BATCH = 2**27  # at most this many scores at once (0.5 GB of float32): 1,024
# users of a 100k-item catalog, 134 of a million-item one (1,024 of those took 18 GB)


def rank_cases(
    scorer: Scorer,
    cases: Sequence[EvalCase],
    batch_size: int = 1024,
    advance: Callable[..., None] | None = None,
) -> np.ndarray:
    """Rank of each case's target (order of `cases`; inf = miss), scored `batch_size` users
    at a time, fewer for a large catalog (`SCORES_PER_BATCH`), with each case's timestamps
    for models that read time; `advance(n)` is called after each batch."""
    batch_size = max(1, min(batch_size, SCORES_PER_BATCH // max(scorer.n_items + 1, 1)))
    ranks = []
    for start in range(0, len(cases), batch_size):
        chunk = cases[start : start + batch_size]
        histories = [c.history for c in chunk]
        times = [c.times for c in chunk]
        scores = scorer.score_batch(histories, None if any(t is None for t in times) else times)
        ranks.append(target_ranks(scores, [c.target for c in chunk], histories))
        if advance is not None:
            advance(len(chunk))
    return np.concatenate(ranks) if ranks else np.zeros(0)


__all__ = ["rank_cases"]
