"""The model's plan as a `Plan` the executor runs: each step the model wrote becomes a tool
call with real arguments (titles looked up in the catalog, the turn's hard constraints on
every recall step), the titles it would recommend become a `suggest_titles` step, and the
planner's steps the model left out are added after its own (labelled as the rules'), so a
small model that plans too little still answers as well as the planner.

Invalid steps are repaired or dropped here and counted: a step without what it needs (a
search without words, titles the catalog lacks), a title not in the catalog.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from recagent.agent.plan import Plan, PlanStep
from recagent.agent.planner import (
    constraint_args,
    finish_steps,
    own_title_steps,
    pool_size,
    recall_args,
    recall_steps,
    seed_steps,
)
from recagent.agent.reading import ModelStep
from recagent.agent.turn import Turn
from recagent.data.dataset import Dataset

TITLE_SCORE = 85.0
MODEL_TITLES = 20  # the most titles of its own a model may put on the table


def _ids(titles: list[str], dataset: Dataset, step: PlanStep, repairs: Counter[str]) -> list[str]:
    out: list[str] = []
    for title in titles:
        hits = dataset.titles.search(title, limit=1, min_score=TITLE_SCORE)
        if hits:
            out.append(hits[0].item_id)
        else:
            step.repaired.append(f"dropped {title!r}: not in the catalog")
            repairs["unknown_title"] += 1
    return list(dict.fromkeys(out))


def _compile(ms: ModelStep, turn: Turn, dataset: Dataset, repairs: Counter[str]) -> PlanStep | None:
    """One step the model wrote as a tool call, or None when nothing of it is usable."""
    step = PlanStep(tool=ms.tool, source="llm")
    n = pool_size(turn)
    if ms.tool == "search_items":
        query = " ".join(ms.query.split()) or turn.request.query
        if not query:
            repairs["empty_step"] += 1
            return None
        step.args = {"query": query, "k": n, **recall_args(turn)}
    elif ms.tool in ("similar_items", "lookup_items", "suggest_titles"):
        titles = [t for t in ms.titles if t.strip()]
        if not titles:
            repairs["empty_step"] += 1
            return None
        if ms.tool == "similar_items":
            ids = _ids(titles, dataset, step, repairs)
            if not ids:
                repairs["dropped_step"] += 1
                return None
            step.args = {"item_ids": ids, "k": n, **recall_args(turn)}
            if turn.request.combine == "all" and len(ids) > 1:
                step.args["combine"] = "all"
        elif ms.tool == "lookup_items":
            step.args = {"titles": titles[:10]}
        else:
            step.args = {"titles": titles[:MODEL_TITLES]}
    elif ms.tool == "score_candidates":
        step.args = {"k": n, **({"model": ms.model} if ms.model.strip() else {})}
    elif ms.tool == "filter_items":
        step.args = constraint_args(turn)
    else:  # summarize_profile
        step.args = {}
    return step


def _same(a: PlanStep, b: PlanStep) -> bool:
    """Two steps that would find the same items."""
    if a.tool != b.tool:
        return False
    keys = ("query", "item_ids", "use_history", "from_catalog", "titles")
    return all(_norm(a.args.get(k)) == _norm(b.args.get(k)) for k in keys)


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    if isinstance(value, str):
        return value.lower().strip()
    return value


def model_plan(
    steps: list[ModelStep],
    titles: list[str],
    turn: Turn,
    dataset: Dataset,
    repairs: Counter[str],
) -> Plan:
    """The turn's plan from the model's `steps` and the `titles` it would recommend, with the
    planner's steps it left out."""
    written: list[PlanStep] = []
    for ms in steps:
        step = _compile(ms, turn, dataset, repairs)
        if step is None:
            continue
        if any(_same(step, w) and step.args.get("model") == w.args.get("model") for w in written):
            repairs["duplicate_step"] += 1  # small models repeat a step word for word
            continue
        written.append(step)
    if titles and turn.kind == "recommend":
        own = ModelStep(tool="suggest_titles", titles=titles)
        if (step := _compile(own, turn, dataset, repairs)) is not None:
            written.append(step)
    scoring = [s for s in written if s.tool == "score_candidates"]
    model = scoring[-1].args.get("model") if scoring else None
    finish_tools = ("score_candidates", "filter_items")
    recall = [s for s in written if s.tool not in (*finish_tools, "summarize_profile")]
    if turn.kind != "recommend":
        recall = [s for s in recall if s.tool in ("lookup_items",)]
    seed = seed_steps(turn)
    for s in seed:
        if model:
            s.args["model"] = model
    rules = [
        s
        for s in [*recall_steps(turn, dataset.catalog), *own_title_steps(turn)]
        if not any(_same(s, w) for w in recall)
    ]
    profile = [s for s in written if s.tool == "summarize_profile"]
    if turn.kind == "profile":
        return Plan(
            kind="profile",
            steps=profile[:1] or [PlanStep(tool="summarize_profile")],
            mode="plan",
        )
    rules = [s for s in rules if not (profile and s.tool == "summarize_profile")]
    finish = finish_steps(turn, model)
    for s in finish:  # the model's own finishing steps, where it wrote them
        mine = [w for w in written if w.tool == s.tool]
        if mine:
            s.source = "llm"
    plan_steps = [*seed, *recall, *rules, *profile, *finish]
    return Plan(kind=turn.request.intent, steps=plan_steps, mode="plan")


__all__ = ["MODEL_TITLES", "model_plan"]
