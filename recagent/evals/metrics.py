"""The ranking metrics, which live in the leaf module `recagent.metrics` (models and evals
share them); re-exported here for code that imports them from `evals`."""

from recagent.metrics import (
    DEFAULT_KS,
    hit,
    ndcg,
    per_user,
    recall,
    reciprocal_rank,
    summarize,
    target_ranks,
)

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
