"""`score_candidates`: rank items for a user's next pick with a trained model (the workspace's
best on valid unless the caller names one).

What the tool says about a score depends on what the scorer can do, asked through the
capability protocols of `recagent.models.base`, never its class: a scorer that reads the
order of the history (`ReadsSequence`) gives "sequential" evidence, one that can say which
history items drove its scores (`ExplainsScores`) cites them as `because_of`."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recagent.errors import RecagentError
from recagent.models.base import ExplainsScores, ReadsSequence, Scorer
from recagent.tools.base import (
    Evidence,
    EvidenceKind,
    ItemRef,
    ToolContext,
    ToolError,
    tool_spec,
)

TOOL = "score_candidates"
ATTENDED = 3  # history items cited as the reason for the scores
MAX_CATALOG_RANKED = 50  # given items placed among the whole catalog


class ScoreCandidatesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ids: list[str] | None = Field(
        None,
        max_length=2000,
        description="Item ids to score. Default: the candidates found so far this turn that "
        "this model has not scored yet.",
    )
    from_catalog: bool = Field(
        False,
        description="Rank the whole catalog instead and add its best k to the candidates "
        "(this history's likely next items).",
    )
    history: list[str] | None = Field(
        None,
        max_length=2000,
        description="Item ids the user watched or liked, oldest first. Default: the current "
        "user's history.",
    )
    user_id: str | None = Field(
        None, description="Use this known user's history instead (not with `history`)."
    )
    k: int = Field(10, ge=1, le=100, description="How many of the best-scored items to return.")
    model: str | None = Field(
        None,
        description="Which trained model scores: sasrec, lrurec, hstu, bert4rec, bst (reranks the "
        "candidates), fusion, or popularity. Default: the best one on validation.",
    )


class ScoredItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: ItemRef
    score: float = Field(description="Higher is better; compare only within one call.")
    rank: int = Field(description="1 = most likely next pick among the scored items.")
    catalog_rank: int | None = Field(
        None,
        description="Its place among every catalog item the user has not seen (given "
        "item_ids only, up to 50 of them).",
    )


class ScoreCandidatesResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The scoring model (popularity when no model is trained).")
    history_used: int = Field(description="History items the model read (0: popularity).")
    scored: int = Field(description="How many items were ranked.")
    catalog_size: int | None = Field(
        None, description="How many unseen catalog items `catalog_rank` is out of."
    )
    items: list[ScoredItem] = Field(description="The best `k` scored items, best first.")
    attended: list[ItemRef] = Field(
        default_factory=list,
        description="History items the model weighed most for these scores (cite these).",
    )
    seen: list[str] = Field(
        default_factory=list, description="Requested items the user has already seen: skipped."
    )
    notes: list[str] = Field(
        default_factory=list,
        description="What to know about these scores, e.g. items scored from their text only.",
    )


def _history(args: ScoreCandidatesArgs, ctx: ToolContext) -> list[str] | ToolError:
    if args.history is not None and args.user_id is not None:
        return ToolError(error="pass either history or user_id, not both")
    if args.user_id is not None:
        if ctx.dataset.interactions.user_idx_of(args.user_id) is None:
            return ToolError(
                error=f"unknown user_id {args.user_id!r}",
                hint="omit user_id to use the current user, or pass their items as history",
            )
        return ctx.dataset.user_history(args.user_id)
    return list(args.history) if args.history is not None else list(ctx.history)


def unscored(ctx: ToolContext, model: str) -> list[str]:
    """This turn's candidates that `model` has not scored yet."""
    return [
        i
        for i in ctx.candidates.ids()
        if not any(ev.tool == TOOL and ev.detail == model for ev in ctx.candidates.evidence(i))
    ]


def score_candidates(args: ScoreCandidatesArgs, ctx: ToolContext) -> BaseModel:
    """Rank items by how likely this user is to pick them next, with a sequential model
    trained on the order in which people watched things (by default the best one on
    validation; `model` picks another). By default it scores the candidates found so far
    this turn (or the `item_ids` you pass) against the current user's history (or the
    `history` you pass, oldest first, e.g. items the user just mentioned); with
    from_catalog=true (or no candidates yet) it ranks the whole catalog and adds its best k
    to the candidates.
    Returns the best `k` with score and rank (given item_ids also get their place among the
    whole catalog), the history items the model weighed most (cite them when explaining),
    and requested items the user has already seen (skipped)."""
    scorer = _scorer(args, ctx)
    if not isinstance(scorer, Scorer):
        return scorer
    history = _history(args, ctx)
    if isinstance(history, ToolError):
        return history
    hint = "use item ids exactly as other tools returned them"
    if unknown := ctx.unknown_ids(history):
        return ToolError(error=f"unknown history item ids: {', '.join(unknown[:5])}", hint=hint)
    if args.from_catalog and args.item_ids is not None:
        return ToolError(error="give item_ids or from_catalog=true, not both")
    requested = args.item_ids if args.item_ids is not None else unscored(ctx, scorer.name)
    whole = args.from_catalog or (args.item_ids is None and not len(ctx.candidates))
    if unknown := ctx.unknown_ids(requested):
        return ToolError(error=f"unknown item ids: {', '.join(unknown[:5])}", hint=hint)
    seen_set = set(history)
    candidates = list(dict.fromkeys(i for i in requested if i not in seen_set))
    seen = list(dict.fromkeys(i for i in requested if i in seen_set))

    catalog_ranks: dict[str, int] = {}
    if whole:
        ranked = scorer.recommend(history, args.k, exclude=history)
        scored_count = scorer.n_items - len(seen_set)
    else:
        scores = scorer.score(history, candidates) if candidates else np.zeros(0)
        order = sorted(range(len(candidates)), key=lambda i: (-_finite(float(scores[i])), i))
        ranked = [(candidates[i], float(scores[i])) for i in order]
        scored_count = len(candidates)
        if args.item_ids is not None and 0 < len(candidates) <= MAX_CATALOG_RANKED:
            catalog_ranks = _catalog_ranks(scorer, history, candidates)

    sequential = isinstance(scorer, ReadsSequence | ExplainsScores) and bool(history)
    attended: list[str] = []
    history_used = 0
    if isinstance(scorer, ExplainsScores) and history and ranked:
        attended = [i for i, _ in scorer.attended(history, ATTENDED, candidate=ranked[0][0])]
    if isinstance(scorer, ReadsSequence) and history:
        history_used = min(len(history), scorer.max_len)
    kind: EvidenceKind = "sequential" if sequential else "popularity"
    items = []
    for rank, (item_id, score) in enumerate(ranked, start=1):
        evidence = Evidence(
            tool=TOOL,
            kind=kind,
            score=round(score, 4),
            rank=rank,
            because_of=attended,
            detail=scorer.name,
            catalog_rank=rank if whole else catalog_ranks.get(item_id),
        )
        if rank <= args.k:
            items.append(
                ScoredItem(
                    item=ctx.ref(item_id),
                    score=round(score, 4),
                    rank=rank,
                    catalog_rank=catalog_ranks.get(item_id),
                )
            )
            ctx.candidates.add(item_id, evidence)
        elif not whole:
            ctx.candidates.add(item_id, evidence)
    scored_ids = [i for i in scorer.item_ids if i not in seen_set] if whole else candidates
    return ScoreCandidatesResult(
        model=scorer.name,
        history_used=history_used,
        scored=scored_count,
        catalog_size=scorer.n_items - len(seen_set) if catalog_ranks else None,
        items=items,
        attended=[ctx.ref(i) for i in attended],
        seen=seen,
        notes=text_only_notes(scorer, scored_ids, [i.item.item_id for i in items]),
    )


def _catalog_ranks(scorer: Scorer, history: list[str], item_ids: list[str]) -> dict[str, int]:
    """Each item's place among every unseen catalog item for `history` (1 = best; ties
    share the better place)."""
    row = np.asarray(scorer.score(history), dtype=np.float64)
    row[np.isnan(row)] = -np.inf
    row[0] = -np.inf
    if history:
        row[scorer.to_idx(history)] = -np.inf
    out = {}
    for item_id, idx in zip(item_ids, scorer.to_idx(item_ids), strict=True):
        out[item_id] = 1 + int((row > row[idx]).sum())
    return out


def text_only_notes(scorer: Scorer, scored: list[str], returned: list[str]) -> list[str]:
    """One note per reason why some of the `scored` items were scored from their text alone
    (a text-aligned model), naming those among the `returned` ones."""
    by_reason: dict[str, list[str]] = {}
    for item_id in scored:
        if (reason := scorer.text_only.get(item_id)) is not None:
            by_reason.setdefault(reason, []).append(item_id)
    notes = []
    for reason, ids in sorted(by_reason.items()):
        shown = [i for i in returned if scorer.text_only.get(i) == reason]
        among = f" (returned here: {', '.join(shown)})" if shown else ""
        noun = "item" if len(ids) == 1 else "items"
        notes.append(f"{len(ids)} {noun} scored from their text only: {reason}{among}")
    return notes


def _scorer(args: ScoreCandidatesArgs, ctx: ToolContext) -> Scorer | ToolError:
    """The default scorer, or the one `args.model` names (loaded on first use)."""
    if args.model is None or args.model == getattr(ctx.scorer, "name", None):
        if isinstance(ctx.scorer, Scorer):
            return ctx.scorer
        return ToolError(
            error="no scoring model is loaded",
            hint="order candidates another way; to enable this tool run `recagent train sasrec`",
        )
    default = getattr(ctx.scorer, "name", None)
    if ctx.scorers is None:
        return ToolError(
            error=f"only the default model ({default}) can score here, not {args.model!r}",
            hint="omit model to use the default",
        )
    try:
        named: Scorer = ctx.scorers.get(args.model)
    except RecagentError as exc:
        usable = ", ".join(ctx.scorers.available())
        return ToolError(
            error=str(exc),
            hint=f"models available here: {usable}; omit model to use the default ({default})",
        )
    return named


def _finite(value: float) -> float:
    return float(value) if np.isfinite(value) else float("-inf")


SPECS = (tool_spec(TOOL, ScoreCandidatesArgs, score_candidates),)

__all__ = [
    "ScoreCandidatesArgs",
    "ScoreCandidatesResult",
    "ScoredItem",
    "score_candidates",
    "unscored",
]
