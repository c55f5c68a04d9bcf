"""The one contract the evaluation harness scores: history (+ optional request, + optional
candidate list) -> ranked item ids, with what it cost and what it claimed."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field


class Recommendation(BaseModel):
    """A ranked list of external item ids, best first, plus cost and explanation records."""

    item_ids: list[str]
    explanations: dict[str, str] = Field(default_factory=dict)
    unfaithful_explanations: int = Field(
        0, description="Explanations that cited evidence no tool returned (before repair)."
    )
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    repairs: int = 0
    tool_calls: int = 0
    tool_failures: int = 0
    model: str | None = None
    titles_proposed: int = Field(0, description="Titles a model named from what it knows.")
    titles_found: int = Field(0, description="... that the catalog has.")


class Recommender(Protocol):
    """Anything the harness can evaluate."""

    name: str

    def recommend(
        self,
        history: list[str],
        k: int,
        request: str | None = None,
        candidates: list[str] | None = None,
        user_id: str | None = None,
    ) -> Recommendation:
        """Top-`k` items for a user with this history (time order). With `candidates`, rank
        only those. `request` is what the user typed (None: recommend from history)."""
        ...


__all__ = ["Recommendation", "Recommender"]
