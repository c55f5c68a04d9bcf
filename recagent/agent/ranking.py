"""How the tools' evidence becomes one order: a weighted sum of per-signal percentiles.

Each signal (SASRec score, text match, similarity to reference items or to the history,
popularity) is turned into a percentile among the candidates that have it, so signals on
different scales mix fairly; a candidate without a signal gets nothing from it. What the
user asked for (a description, reference titles) weighs most when present; otherwise the
sequential model leads.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from pydantic import BaseModel, ConfigDict

from recagent.tools.base import CandidateSet, EvidenceKind

SIGNALS: tuple[EvidenceKind, ...] = (
    "sequential",
    "text_match",
    "similar_to_items",
    "similar_to_history",
    "popularity",
)


class BlendConfig(BaseModel):
    """Weights per signal, for requests with and without content (a query or titles)."""

    model_config = ConfigDict(extra="forbid")

    with_content: dict[str, float] = {
        "text_match": 1.0,
        "similar_to_items": 1.0,
        "sequential": 0.6,
        "similar_to_history": 0.2,
        "popularity": 0.1,
    }
    without_content: dict[str, float] = {
        "sequential": 1.0,
        "similar_to_history": 0.3,
        "popularity": 0.1,
        "text_match": 0.3,
        "similar_to_items": 0.3,
    }


def _percentiles(values: dict[str, float]) -> dict[str, float]:
    if not values:
        return {}
    ids = list(values)
    scores = np.array([values[i] for i in ids], dtype=float)
    scores = np.nan_to_num(scores, nan=-np.inf)
    order = scores.argsort(kind="stable")
    pct = np.empty(len(ids))
    pct[order] = (np.arange(len(ids)) + 1) / len(ids)
    return dict(zip(ids, pct.tolist(), strict=True))


def signal_values(candidates: CandidateSet) -> dict[str, dict[str, float]]:
    """Best raw score per signal per candidate (SASRec rank is inverted into a score)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for item_id in candidates.ids():
        for ev in candidates.evidence(item_id):
            if ev.kind not in SIGNALS:
                continue
            value = ev.score if ev.score is not None else (-(ev.rank or 0) or None)
            if value is None:
                continue
            prev = out[ev.kind].get(item_id)
            out[ev.kind][item_id] = value if prev is None else max(prev, value)
    return out


def blend(
    candidates: CandidateSet, has_content: bool, cfg: BlendConfig | None = None
) -> dict[str, float]:
    """A score per active candidate; higher is better."""
    cfg = cfg or BlendConfig()
    weights = cfg.with_content if has_content else cfg.without_content
    total = dict.fromkeys(candidates.ids(), 0.0)
    for kind, values in signal_values(candidates).items():
        w = weights.get(kind, 0.0)
        for item_id, p in _percentiles(values).items():
            if item_id in total:
                total[item_id] += w * p
    return total


def order_by(scores: dict[str, float]) -> list[str]:
    """Item ids best first; ties keep first-seen order."""
    return sorted(scores, key=lambda i: -scores[i])


__all__ = ["BlendConfig", "blend", "order_by", "signal_values"]
