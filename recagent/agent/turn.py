"""One turn as one value, built once after the request is understood and read by every later
stage (gather, rank, guard, respond): the request, the count, the history the models score,
the references and conversation seeds to recall from, what may not be recommended and why,
and the hard constraints that follow from all of it.

Evaluation passes its options per call (`AskOptions`) instead of setting attributes on a
live session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.request import Request
from recagent.data.catalog import Catalog
from recagent.data.constraints import Constraints


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

    @property
    def has_content(self) -> bool:
        """Asks for something beyond "what next for my history": a taste, a reference, or
        items the conversation named."""
        return bool(self.request.query or self.reference_ids or self.seeds)

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


__all__ = ["AskOptions", "Turn", "constraints_for"]
