"""How the tools' evidence becomes one order: a weighted sum of per-signal percentiles.

Each signal (SASRec score, text match, similarity to reference items or the history, items
people watch together, popularity lately, similarity to what the person disliked) is turned
into a percentile among the candidates that have it, so signals on different scales mix
fairly; a candidate without a signal gets nothing from it. Genre fit (the share of the genres
the person said they like that an item has, minus one for a genre they said they do not like)
is added as it is. Three weight profiles: with nothing asked beyond "what next" for a history
the sequential model decides (the best next-item model; blending in recall only diluted it:
benchmarks/RESULTS.md); a description that items match well, with no titles named, puts those
matches first; once the person names titles or the conversation taught us items, the
collaborative and popularity signals lead (what people suggested next in real dialogues).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from recagent.tools.base import CandidateSet, EvidenceKind

SIGNALS: tuple[EvidenceKind, ...] = (
    "sequential",
    "text_match",
    "similar_to_items",
    "co_watched",
    "similar_to_history",
    "popularity",
    "similar_to_disliked",
)
GENRE_FIT = "genre_fit"


class BlendConfig(BaseModel):
    """Weights per signal, for requests with content (a taste, titles, conversation items)
    and for a history alone."""

    model_config = ConfigDict(extra="forbid")

    # chosen on the tune half of redial-dev (benchmarks/RESULTS.md): recent popularity and
    # the genres a person names carry most; co-watched items next; SASRec over a few named
    # items says little; pushing away from dislikes costs a little accuracy, kept small
    with_content: dict[str, float] = {
        "text_match": 0.35,
        "similar_to_items": 0.5,
        "co_watched": 0.35,
        "sequential": 0.1,
        "similar_to_history": 0.2,
        "popularity": 1.0,
        "similar_to_disliked": -0.25,
        GENRE_FIT: 0.8,
    }
    # a description of what the person wants ("something about a wedding") and nothing named:
    # what matches it well leads
    with_taste: dict[str, float] = {
        "text_match": 1.0,
        "similar_to_items": 0.5,
        "co_watched": 0.2,
        "sequential": 0.3,
        "similar_to_history": 0.2,
        "popularity": 0.3,
        "similar_to_disliked": -0.25,
        GENRE_FIT: 0.5,
    }
    history_only: dict[str, float] = {"sequential": 1.0, "similar_to_disliked": -0.5}


@dataclass(frozen=True)
class Ranking:
    """The turn's one order: blended scores and candidate ids best first."""

    scores: dict[str, float]
    order: list[str]


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
    candidates: CandidateSet,
    weights: dict[str, float],
    extra: dict[str, dict[str, float]] | None = None,
) -> dict[str, float]:
    """A score per active candidate; higher is better. `extra`: signals computed outside
    the evidence, replacing what the evidence says of that kind (popularity for every
    candidate, text matches above the match threshold; genre fit, added as is)."""
    total = dict.fromkeys(candidates.ids(), 0.0)
    values = signal_values(candidates)
    values.update(extra or {})
    for kind, per_item in values.items():
        w = weights.get(kind, 0.0)
        if not w:
            continue
        scaled = per_item if kind == GENRE_FIT else _percentiles(per_item)
        for item_id, p in scaled.items():
            if item_id in total:
                total[item_id] += w * p
    return total


def order_by(scores: dict[str, float]) -> list[str]:
    """Item ids best first; ties keep first-seen order."""
    return sorted(scores, key=lambda i: -scores[i])


__all__ = ["GENRE_FIT", "BlendConfig", "Ranking", "blend", "order_by", "signal_values"]
