"""One turn as one value, built once after the request is understood and read by every later
stage (plan, execute, rank, guard, respond): the request, the count, the history the models
score, the references, the titles just named as loved and the conversation seeds to recall
from, what may not be recommended and why, and the hard constraints that follow from all of
it.

Evaluation passes its options per call (`AskOptions`) instead of setting attributes on a
live session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.conversation import Conversation
from recagent.agent.request import Request
from recagent.data.catalog import Catalog
from recagent.data.constraints import ConstraintError, Constraints
from recagent.data.dataset import Dataset

OWN_TITLES = ("rank", "judge", "why_not")  # kinds about titles the person names


class AskOptions(BaseModel):
    """Per-call options of `ChatSession.ask` (what an evaluation controls)."""

    model_config = ConfigDict(extra="forbid")

    history: list[str] | None = Field(
        None, description="Score for this history instead of the session user's stored one."
    )
    allowed_ids: list[str] | None = Field(
        None, description="Rank only these items (the candidates protocol)."
    )


@dataclass(frozen=True)
class Turn:
    request: Request  # the effective reading (a refinement merged with the last request)
    k: int
    history: list[str]  # the stored (or given) history, then what the conversation taught
    reference_ids: list[str]  # "like this one": this turn's reference items
    seeds: dict[str, float]  # items the conversation named, to recall from (with weights)
    exclusions: dict[str, str]  # item_id -> why it may not be recommended
    disliked: list[str]  # items to push away from
    liked_genres: list[str] = field(default_factory=list)  # said in the conversation (soft)
    disliked_genres: list[str] = field(default_factory=list)
    allowed_ids: list[str] | None = None
    stored_history: int = 0  # how many of `history` come from the stored history
    constraints: Constraints = field(default_factory=Constraints)  # see `constraints_for`
    focus: list[str] = field(default_factory=list)  # loved or liked in this very message
    compare_ids: list[str] = field(default_factory=list)  # why_not: the last answer's items

    @property
    def kind(self) -> str:
        return self.request.intent

    @property
    def has_content(self) -> bool:
        """Asks for something beyond "what next for my history": a taste, a reference, or
        items the conversation named."""
        return bool(self.request.query or self.reference_ids or self.seeds or self.focus)

    @property
    def learned_history(self) -> list[str]:
        return self.history[self.stored_history :]


def constraints_for(
    request: Request, exclusions: dict[str, str], allowed_ids: list[str] | None, catalog: Catalog
) -> Constraints:
    """A turn's hard constraints: the request's genres and years, none of the excluded items,
    only the allowed ones; resolved against `catalog` (`ConstraintError` if they name what it
    does not have)."""
    c = request.constraints.model_copy(
        update={
            "exclude_ids": list(exclusions),
            "include_ids": None if allowed_ids is None else list(allowed_ids),
        }
    )
    return c.resolve(catalog)


def build_turn(
    request: Request,
    k: int,
    options: AskOptions,
    conversation: Conversation,
    dataset: Dataset,
    stored_history: list[str],
    focus: list[str],
    notices: list[str],
) -> Turn:
    """Everything the later stages act on, built once from the effective request and the
    conversation as this message leaves it. `focus`: titles this message names as loved or
    liked; `notices`: where to say what could not be honoured."""
    catalog = dataset.catalog
    given = options.history if options.history is not None else stored_history
    stored = [i for i in given if i in catalog]
    stored_set = set(stored)
    history = stored + [i for i in conversation.history() if i not in stored_set]
    targets = list(request.targets) if request.intent in OWN_TITLES else []
    references = [
        m.item_id
        for m in request.mentions
        if m.feeling == "like_this" and m.item_id and m.rank is None
    ]
    last = conversation.last_answer
    if request.more_like_rank and last and last.items:
        n = request.more_like_rank
        place = n if n > 0 else len(last.items)  # -1 = "the last one"
        if 1 <= place <= len(last.items):
            references.append(last.items[place - 1].item_id)
    exclusions: dict[str, str] = {}
    if not request.include_seen:
        exclusions.update(dict.fromkeys(history, "seen"))
        # another edition or platform of a seen item is seen too
        for item_id in dataset.titles.other_editions(history):
            exclusions.setdefault(item_id, "seen")
    exclusions.update(dict.fromkeys(conversation.disliked(), "disliked"))
    if request.more:
        exclusions.update({i: "already_shown" for i in conversation.shown if i not in exclusions})
    exclusions.update(dict.fromkeys(references, "reference_item"))
    for item_id in targets:  # the person's own titles are what this answer is about
        exclusions.pop(item_id, None)
    allowed = options.allowed_ids
    if targets:
        allowed = [t for t in targets if allowed is None or t in allowed]
        constraints = Constraints(include_ids=allowed, exclude_ids=list(exclusions)).resolve(
            catalog
        )
    else:
        try:
            constraints = constraints_for(request, exclusions, allowed, catalog)
        except ConstraintError as exc:
            notices.append(f"{exc}; ignoring the request's genres")
            request.constraints = request.constraints.relaxed()
            constraints = constraints_for(request, exclusions, allowed, catalog)
    liked, disliked = conversation.genre_preferences()
    references = list(dict.fromkeys(references))
    return Turn(
        request=request,
        k=len(targets) if request.intent == "rank" else 1 if targets else k,
        history=history,
        reference_ids=references,
        seeds={i: w for i, w in conversation.seeds().items() if i not in stored_set},
        exclusions=exclusions,
        disliked=conversation.disliked(),
        liked_genres=liked,
        disliked_genres=disliked,
        allowed_ids=allowed,
        stored_history=len(stored),
        constraints=constraints,
        # what they say now must outweigh a stored history; with none, it is all they said
        focus=[i for i in dict.fromkeys(focus) if i in catalog and i not in references]
        if stored
        else [],
        compare_ids=conversation.last_answer_ids() if request.intent == "why_not" else [],
    )


def recall_filters(turn: Turn) -> dict[str, Any]:
    """The turn's hard constraints as the recall tools' `filters` (seen items are left out by
    the tools themselves, through `exclude_seen`)."""
    c = turn.constraints
    filters: dict[str, Any] = {
        key: value
        for key, value in c.model_dump(exclude={"include_ids", "exclude_ids"}).items()
        if value not in (None, [])
    }
    excluded = [i for i, why in turn.exclusions.items() if why != "seen"]
    if excluded:
        filters["exclude_ids"] = excluded
    if turn.allowed_ids is not None:
        filters["include_ids"] = list(turn.allowed_ids)
    return filters


__all__ = ["OWN_TITLES", "AskOptions", "Turn", "build_turn", "constraints_for", "recall_filters"]
