"""How the tools' evidence becomes one order: a weighted sum of per-signal percentiles.

Each signal (the sequence model's score, text match, similarity to reference items or the
history, items people watch together, a title the model suggested, popularity lately,
similarity to what the person disliked) is turned into a percentile among the candidates
that have it (tied values share their average rank), so signals on different scales mix
fairly; a candidate without a signal gets nothing from it. Items near a title the person
names as loved in this very message get a focus signal of their own, so what they say now
outweighs a long stored history. Genre fit (the share of the genres
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
from scipy.stats import rankdata

from recagent.agent.turn import Turn
from recagent.tools.base import CandidateSet, Evidence, EvidenceKind, ToolContext

SIGNALS: tuple[EvidenceKind, ...] = (
    "sequential",
    "text_match",
    "similar_to_items",
    "co_watched",
    "similar_to_history",
    "popularity",
    "similar_to_disliked",
    "suggested",
)
GENRE_FIT = "genre_fit"
FOCUS = "focus"  # near a title loved in this very message
BETWEEN = "between"  # of a genre of every reference ("between Alien and Toy Story")
RAW = (GENRE_FIT, BETWEEN)  # signals added as they are, not as percentiles
DISLIKED_NEIGHBOURS = 200


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
        "suggested": 0.5,
        FOCUS: 1.0,
        BETWEEN: 1.0,
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
        "suggested": 0.5,
        FOCUS: 1.0,
    }
    history_only: dict[str, float] = {
        "sequential": 1.0,
        "similar_to_disliked": -0.5,
        "suggested": 0.5,
    }


@dataclass(frozen=True)
class Ranking:
    """The turn's one order: blended scores and candidate ids best first."""

    scores: dict[str, float]
    order: list[str]


def _percentiles(values: dict[str, float]) -> dict[str, float]:
    """Each value's rank among `values` over their number (1 = the best); tied values share
    their average rank, so the order tools found items in never breaks a tie."""
    if not values:
        return {}
    ids = list(values)
    scores = np.array([values[i] for i in ids], dtype=float)
    scores = np.nan_to_num(scores, nan=-np.inf, posinf=np.finfo(float).max)
    pct = rankdata(scores, method="average") / len(ids)
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
        scaled = per_item if kind in RAW else _percentiles(per_item)
        for item_id, p in scaled.items():
            if item_id in total:
                total[item_id] += w * p
    return total


def order_by(scores: dict[str, float], tiebreak: dict[str, int] | None = None) -> list[str]:
    """Item ids best first; ties go by `tiebreak` (the catalog's order), never by the order
    tools found them in."""
    key = tiebreak or {}
    return sorted(scores, key=lambda i: (-scores[i], key.get(i, 0), i))


def rank(ctx: ToolContext, turn: Turn, config: BlendConfig) -> Ranking:
    """Blend the candidates' evidence once: the order every later step uses."""
    ids = [i for i in ctx.candidates.ids() if i not in turn.exclusions]
    counts = ctx.popularity_counts
    extra: dict[str, dict[str, float]] = {
        "popularity": {i: float(counts[ctx.catalog.idx(i)]) for i in ids},
        "text_match": {  # a weak text match is no match: it does not rank
            i: ev.score
            for i in ids
            for ev in ctx.candidates.evidence(i)
            if ev.kind == "text_match" and ev.score is not None and ev.score >= ctx.match_threshold
        },
    }
    if turn.focus:
        extra[FOCUS] = _focus(ctx.candidates, ids, set(turn.focus))
    if turn.request.combine == "all" and len(turn.reference_ids) > 1:
        # "between A and B": like each of them, so of a genre of each
        kinds = [set(ctx.catalog[r].genres) for r in turn.reference_ids]
        extra[BETWEEN] = {i: float(all(set(ctx.catalog[i].genres) & k for k in kinds)) for i in ids}
    if turn.liked_genres or turn.disliked_genres:
        liked, disliked = set(turn.liked_genres), set(turn.disliked_genres)
        fit = {}
        for i in ids:
            have = set(ctx.catalog[i].genres)
            share = len(have & liked) / len(liked) if liked else 0.0
            fit[i] = share - (1.0 if have & disliked else 0.0)
        extra[GENRE_FIT] = fit
    if turn.disliked:
        push_away(ctx, turn.disliked, ids)
    weights = config.with_content if turn.has_content else config.history_only
    if extra["text_match"] and not turn.reference_ids and not turn.seeds:
        weights = config.with_taste  # a description that items match well, nothing named
    elif not turn.history and not turn.has_content:
        weights = {"popularity": 1.0, GENRE_FIT: 1.0, "suggested": config.with_content["suggested"]}
    scores = blend(ctx.candidates, weights, extra)
    for item_id in turn.exclusions:
        scores.pop(item_id, None)
    catalog_order = {i: ctx.catalog.idx(i) for i in scores}
    return Ranking(scores=scores, order=order_by(scores, catalog_order))


def _focus(candidates: CandidateSet, ids: list[str], focus: set[str]) -> dict[str, float]:
    """The best similarity or co-watch score of each candidate found from a focus item."""
    out: dict[str, float] = {}
    for i in ids:
        for ev in candidates.evidence(i):
            if ev.kind in ("similar_to_items", "co_watched") and focus & set(ev.because_of):
                value = ev.score if ev.score is not None else 0.0
                out[i] = max(out.get(i, value), value)
    return out


def push_away(ctx: ToolContext, disliked: list[str], ids: list[str]) -> None:
    """Mark candidates that people watch with, or that read like, a disliked item."""
    near: dict[str, tuple[float, list[str]]] = {}
    if ctx.pairs is not None:
        for item_id, score, because in ctx.pairs.related(disliked, DISLIKED_NEIGHBOURS):
            near[item_id] = (score, because)
    if ctx.index is not None and ids:
        vectors = ctx.index.embeddings(disliked)
        cand = ctx.index.embeddings(ids)
        sims = cand @ vectors.T  # (candidates, disliked)
        for row, item_id in enumerate(ids):
            best = int(np.argmax(sims[row]))
            score = float(sims[row, best])
            if score > near.get(item_id, (-1.0, []))[0]:
                near[item_id] = (score, [disliked[best]])
    wanted = set(ids)
    for item_id, (score, because) in near.items():
        if item_id in wanted:
            ctx.candidates.add(
                item_id,
                Evidence(
                    tool="rank",
                    kind="similar_to_disliked",
                    score=round(score, 4),
                    because_of=because,
                ),
            )


__all__ = [
    "BETWEEN",
    "FOCUS",
    "GENRE_FIT",
    "BlendConfig",
    "Ranking",
    "blend",
    "order_by",
    "push_away",
    "rank",
    "signal_values",
]
