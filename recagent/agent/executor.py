"""One executor for every plan: the planner's, the model's, and the model's tool loop.

Each step is repaired before it runs: an unknown tool is dropped; unknown arguments are
dropped; a title given where an item id belongs is looked up; ids the catalog lacks are
dropped (a step left with nothing to work on is dropped); `k` is clamped to what the tool
takes; a model name the workspace has no model for falls back to the default; filters that
name what the catalog lacks become the turn's own. Recall steps always carry the turn's hard
constraints. Every repair is counted, and a step that still fails is recorded with its
error, never raised.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from recagent.agent.plan import Plan, PlanStep, StepSource
from recagent.agent.turn import Turn, recall_filters
from recagent.data.constraints import ConstraintError, Constraints
from recagent.tools.base import ToolContext, ToolError, result_text
from recagent.tools.registry import TOOLS, run_tool
from recagent.tools.suggest import SuggestTitlesResult

TITLE_AS_ID_SCORE = 90.0
ID_LISTS = ("item_ids", "history")
RECALL_TOOLS = ("search_items", "similar_items")


@dataclass
class Execution:
    """The plan as it ran (each step with its outcome and repairs), the repairs counted, and
    what the steps returned."""

    plan: Plan
    repairs: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    results: list[tuple[PlanStep, BaseModel]] = field(default_factory=list)
    titles_proposed: int = 0  # titles the model put on the table (suggest_titles)
    titles_found: int = 0  # ... that the catalog has

    def result(self, tool: str) -> list[BaseModel]:
        """What the steps of `tool` returned (successful ones), in order."""
        return [r for s, r in self.results if s.tool == tool and not isinstance(r, ToolError)]


class Executor:
    """Runs the steps of one turn over its candidate set (`ctx.candidates`)."""

    def __init__(self, ctx: ToolContext, turn: Turn, plan: Plan) -> None:
        self.ctx = ctx
        self.turn = turn
        self.execution = Execution(plan=plan.model_copy(update={"steps": []}))
        self._unknown_models: set[str] = set()

    def run(self, plan: Plan) -> Execution:
        """Run every step of `plan`, in order."""
        for step in plan.steps:
            self.step(step)
        return self.execution

    def call(self, tool: str, args: dict[str, Any], source: StepSource = "loop") -> str:
        """One call the model makes in the tool loop: repaired, run and recorded as a step of
        the plan; returns what the model reads (the result or the error, as JSON)."""
        result = self.step(PlanStep(tool=tool, args=dict(args or {}), source=source))
        if result is None:
            step = self.execution.plan.steps[-1]
            return ToolError(
                error=step.error or "dropped", hint="; ".join(step.repaired)
            ).model_dump_json()
        return result_text(result)

    def step(self, step: PlanStep) -> BaseModel | None:
        """Repair, run and record one step; None when it was dropped."""
        step = step.model_copy(deep=True)
        repaired = self._repair(step)
        self.execution.plan.steps.append(step)
        if not repaired:
            step.ok = None
            self.execution.repairs["dropped_step"] += 1
            return None
        calls = len(self.ctx.calls)
        result = run_tool(step.tool, step.args, self.ctx)
        if len(self.ctx.calls) > calls:
            step.ms = round(self.ctx.calls[-1].duration_ms, 2)
        if isinstance(result, ToolError):
            step.ok, step.error = False, result.error
            self.execution.repairs["failed_step"] += 1
            self.execution.notes.append(f"{step.tool}: {result.error}")
        else:
            step.ok = True
            if isinstance(result, SuggestTitlesResult):
                found, missing = len(result.found) + len(result.seen), len(result.not_found)
                self.execution.titles_proposed += found + missing
                self.execution.titles_found += found
                if missing:
                    self._fix(step, f"{missing} title(s) not in the catalog", "unknown_title")
        self.execution.results.append((step, result))
        return result

    # ---- repairs ----------------------------------------------------------------------------

    def _fix(self, step: PlanStep, what: str, counter: str) -> None:
        step.repaired.append(what)
        self.execution.repairs[counter] += 1

    def _repair(self, step: PlanStep) -> bool:
        """Fix `step` in place; False when it must be dropped (the reason is in `error`)."""
        spec = TOOLS.get(step.tool)
        if spec is None:
            step.error = f"no tool named {step.tool!r}"
            self._fix(step, f"unknown tool {step.tool!r}", "unknown_tool")
            return False
        fields = spec.args.model_fields
        for key in [k for k in step.args if k not in fields]:
            step.args.pop(key)
            self._fix(step, f"dropped the unknown argument {key!r}", "unknown_argument")
        for key in ID_LISTS:
            if isinstance(step.args.get(key), list) and not self._ids(step, key):
                step.error = f"no catalog item in {key}"
                return False
        if isinstance(step.args.get("titles"), list):
            step.args["titles"] = [t for t in step.args["titles"] if str(t).strip()]
            if not step.args["titles"]:
                step.error = "no titles"
                self._fix(step, "no titles given", "empty_step")
                return False
        self._bounds(step, fields)
        self._model(step)
        if step.tool in RECALL_TOOLS:
            self._filters(step)
        try:
            spec.args.model_validate(step.args)
        except ValidationError as exc:
            step.error = f"invalid arguments: {exc.errors()[0]['msg']}"
            self._fix(step, step.error, "invalid_step")
            return False
        return True

    def _ids(self, step: PlanStep, key: str) -> bool:
        """Item ids the catalog has (a title given as an id is looked up); False when none
        is left of a non-empty list."""
        given = [str(i) for i in step.args[key]]
        kept: list[str] = []
        for raw in given:
            if raw in self.ctx.catalog:
                kept.append(raw)
                continue
            hits = self.ctx.dataset.titles.search(raw, limit=1, min_score=TITLE_AS_ID_SCORE)
            if hits:
                kept.append(hits[0].item_id)
                self._fix(step, f"read {raw!r} as the title {hits[0].title!r}", "title_as_id")
            else:
                self._fix(step, f"dropped {raw!r}: not in the catalog", "unknown_id")
        step.args[key] = list(dict.fromkeys(kept))
        return bool(kept) or not given

    def _bounds(self, step: PlanStep, fields: dict[str, Any]) -> None:
        """`k` and `limit` within what the tool takes."""
        for key in ("k", "limit"):
            info = fields.get(key)
            value = step.args.get(key)
            if info is None or not isinstance(value, int | float):
                continue
            low = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
            high = next((m.le for m in info.metadata if hasattr(m, "le")), None)
            fixed = int(value)
            if low is not None:
                fixed = max(low, fixed)
            if high is not None:
                fixed = min(high, fixed)
            if fixed != value:
                step.args[key] = fixed
                self._fix(step, f"{key} {value} -> {fixed}", "k_clamped")

    def _model(self, step: PlanStep) -> None:
        """A scoring model the workspace does not have falls back to the default."""
        name = step.args.get("model")
        if step.tool != "score_candidates" or not name:
            if step.tool == "score_candidates" and name == "":
                step.args.pop("model")
            return
        default = getattr(self.ctx.scorer, "name", None)
        usable = self.ctx.scorers.available() if self.ctx.scorers is not None else []
        if name != default and name not in usable:
            step.args.pop("model")
            step.repaired.append(f"no model {name!r} here: the default scores")
            if name not in self._unknown_models:  # one choice, counted once per turn
                self._unknown_models.add(name)
                self.execution.repairs["unknown_model"] += 1

    def _filters(self, step: PlanStep) -> None:
        """The turn's hard constraints on a recall step, with whatever narrower constraints
        the step adds that the catalog has."""
        turn = recall_filters(self.turn)
        given = step.args.get("filters")
        if given:
            try:
                mine = Constraints.model_validate(given).resolve(self.ctx.catalog)
            except (ValidationError, ConstraintError, TypeError):
                self._fix(step, "filters the catalog lacks: the turn's own", "filters_replaced")
                mine = None
            if mine is not None:
                merged = mine.model_dump(exclude_defaults=True)
                for key, value in turn.items():
                    if key in ("exclude_ids", "genres_all", "genres_none") and key in merged:
                        merged[key] = list(dict.fromkeys([*value, *merged[key]]))
                    else:
                        merged[key] = value  # the turn's own wins
                step.args["filters"] = merged
                return
        step.args["filters"] = turn


__all__ = ["Execution", "Executor"]
