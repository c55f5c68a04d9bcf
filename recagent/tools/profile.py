"""The profile tool: what the current user's history says about their taste."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from recagent.data.profile import UserProfile, compute_profile
from recagent.tools.base import ToolContext, tool_spec


class SummarizeProfileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SummarizeProfileResult(BaseModel):
    summary: str = Field(description="The profile in words.")
    profile: UserProfile


def current_profile(ctx: ToolContext) -> UserProfile:
    """The profile of the context's user, computed once per history and cached."""
    key = ("profile", tuple(ctx.history))
    cached = ctx.extras.get("profile")
    if cached and cached[0] == key:
        return cached[1]
    ratings = ctx.history_ratings if ctx.history_ratings is not None else None
    profile = compute_profile(ctx.catalog, ctx.history, ratings, ctx.user_id)
    ctx.extras["profile"] = (key, profile)
    return profile


def summarize_profile(args: SummarizeProfileArgs, ctx: ToolContext) -> BaseModel:
    """The current user's taste from their history: top genres with shares, genres they rate
    above or below their average, favourite decades, recent and top-rated items, and how
    they rate. Call it to personalise a vague request or to explain choices."""
    profile = current_profile(ctx)
    summary = profile.text
    if ctx.profile_writer is not None and profile.n_items:
        summary = ctx.profile_writer(profile) or summary
    return SummarizeProfileResult(summary=summary, profile=profile)


SPECS = (tool_spec("summarize_profile", SummarizeProfileArgs, summarize_profile),)

__all__ = ["SummarizeProfileResult", "current_profile", "summarize_profile"]
