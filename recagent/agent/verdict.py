"""Answers about one title: is it a good pick for this person (judge), and why was it not
recommended (why_not), each a plain verdict with its evidence in words.

A title the person has seen, disliked, or that the last request's constraints rule out gets
that as its verdict. Otherwise the verdict is the title's place among every catalog title the
person has not seen, as the sequence model scores their history (good pick: the top tenth;
maybe: the top 40%; else not for them), or, with no history, the stars the best rating
predictor on valid expects (4+: good pick, 3.5+: maybe), else how popular it is lately and how
it fits the genres they like. The predicted stars are among the reasons either way.
"""

from __future__ import annotations

from recagent.agent.schema import Verdict, VerdictLabel
from recagent.agent.steps import scorer_name
from recagent.agent.turn import Turn
from recagent.data.constraints import Constraints
from recagent.data.profile import UserProfile
from recagent.tools.base import ToolContext

GOOD_PICK = 0.9  # share of the catalog it must beat
MAYBE = 0.6
GOOD_STARS, MAYBE_STARS = 4.0, 3.5  # predicted stars, where no sequence model ranks it
RATING_NAMES = {
    "global-mean": "the mean rating",
    "item-mean": "its mean rating",
    "biases": "your and its rating biases",
    "mf": "matrix factorisation of the ratings",
}
_WHY = {
    "genre": "it is not of the genres asked for ({asked})",
    "excluded_genre": "it is {genres}, which the request ruled out",
    "year": "it is from {year}, outside the years asked for ({years})",
}


def _ruled_out(turn: Turn, item_id: str, ctx: ToolContext, last: Constraints | None) -> str:
    """Why the last request's constraints keep the item out ("" when they do not)."""
    if last is None:
        return ""
    item = ctx.catalog[item_id]
    reason = last.resolve(ctx.catalog).admits(item)
    if reason not in _WHY:
        return ""
    years = f"{last.year_min or '...'}-{last.year_max or '...'}"
    asked = ", ".join([*last.genres_all, *last.genres_any])
    return _WHY[reason].format(
        asked=asked, genres=", ".join(item.genres), year=item.year, years=years
    )


def _percentile(ctx: ToolContext, item_id: str) -> tuple[float | None, int | None, int | None]:
    """(share of unseen catalog items it beats, its place, out of how many) by the sequence
    model's evidence; Nones when there is none."""
    ranked = [
        ev
        for ev in ctx.candidates.evidence(item_id)
        if ev.kind == "sequential" and ev.catalog_rank is not None
    ]
    if not ranked:
        return None, None, None
    place = ranked[-1].catalog_rank or 1
    size = max(len(ctx.catalog) - len(set(ctx.history)), 1)
    return 1.0 - (place - 1) / size, place, size


def _popularity_share(ctx: ToolContext, item_id: str) -> float:
    counts = ctx.popularity_counts
    mine = counts[ctx.catalog.idx(item_id)]
    return float((counts[1:] < mine).mean())


def judge_item(
    ctx: ToolContext,
    turn: Turn,
    item_id: str,
    profile: UserProfile,
    disliked: list[str],
    last_constraints: Constraints | None = None,
) -> Verdict:
    """The verdict on `item_id` for this person (`last_constraints`: for why_not, the last
    request's, which may have kept it out)."""
    item = ctx.catalog[item_id]
    reasons: list[str] = []
    label: VerdictLabel
    if item_id in disliked:
        label, summary = "disliked", f"You told me you did not like {item.title}."
    elif item_id in set(turn.history):
        label, summary = "seen", f"You have already seen {item.title}."
    elif why := _ruled_out(turn, item_id, ctx, last_constraints):
        label, summary = "excluded", f"{item.title} was left out because {why}."
    else:
        label, summary = "maybe", ""
    pct, place, size = _percentile(ctx, item_id)
    if pct is not None and place is not None and size is not None:
        model = next(
            (ev.detail for ev in ctx.candidates.evidence(item_id) if ev.catalog_rank), None
        )
        name = scorer_name(ctx, model)
        reasons.append(f"{name} ranks it #{place} of {size:,} unseen titles for your history")
    near = [
        ctx.catalog[i].title
        for ev in ctx.candidates.evidence(item_id)
        if ev.kind in ("similar_to_history", "co_watched")
        for i in ev.because_of[:2]
        if i in ctx.catalog
    ]
    if near:
        reasons.append("close to " + " and ".join(dict.fromkeys(near[:2])) + " from your history")
    liked = [g for g in item.genres if g in profile.liked_genres]
    top = [g.genre for g in profile.top_genres[:3]]
    fit = liked or [g for g in item.genres if g in top]
    if fit:
        reasons.append("it is " + " and ".join(fit[:2]) + ", which you watch a lot")
    elif profile.n_items and item.genres:
        reasons.append("its genres (" + ", ".join(item.genres[:3]) + ") are not your usual")
    share = _popularity_share(ctx, item_id)
    if share >= 0.8:
        reasons.append("popular lately")
    rating = ctx.rating_model() if ctx.rating_model else None
    stars = None
    if rating is not None:
        stars = round(rating.stars(ctx.dataset, ctx.user_id, item_id), 1)
        rmse = rating.valid[rating.name]
        reasons.append(
            f"you would rate it about {stars:g} of 5 stars ({RATING_NAMES[rating.name]}, the "
            f"best rating predictor on valid: RMSE {rmse:.2f})"
        )
    if label == "maybe":
        if pct is None and stars is not None:  # no sequence model place: the stars decide
            pct = 1.0 if stars >= GOOD_STARS else 0.7 if stars >= MAYBE_STARS else 0.0
        score = pct if pct is not None else 0.5 * share + (0.5 if fit else 0.0)
        if score >= GOOD_PICK:
            label, summary = "good_pick", f"Yes: {item.title} looks like a good pick for you."
        elif score >= MAYBE:
            summary = f"Maybe: {item.title} could suit you."
        else:
            label, summary = "not_for_you", f"Probably not: {item.title} is not your kind of title."
    return Verdict(
        item_id=item_id,
        title=item.title,
        label=label,
        summary=summary,
        reasons=reasons,
        catalog_rank=place,
        catalog_size=size,
        predicted_stars=stars,
        rating_model=rating.name if rating is not None else None,
    )


def why_not(
    ctx: ToolContext,
    turn: Turn,
    item_id: str,
    profile: UserProfile,
    disliked: list[str],
    last_constraints: Constraints | None,
    last_ranks: list[int],
) -> Verdict:
    """Why `item_id` was not in the last answer (`last_ranks`: its items' catalog places,
    when known)."""
    verdict = judge_item(ctx, turn, item_id, profile, disliked, last_constraints)
    if verdict.label in ("seen", "disliked", "excluded"):
        return verdict
    item = ctx.catalog[item_id]
    if verdict.catalog_rank is not None and last_ranks:
        worst = max(last_ranks)
        if verdict.catalog_rank > worst:
            verdict.summary = (
                f"{item.title} ranks #{verdict.catalog_rank} for your history; the picks I "
                f"showed ranked higher (down to #{worst})."
            )
            return verdict
    verdict.summary = (
        f"{item.title} was not among what the tools found for that request. {verdict.summary}"
    )
    return verdict


__all__ = ["GOOD_PICK", "MAYBE", "judge_item", "why_not"]
