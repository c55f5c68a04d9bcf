"""A plan: the ordered tool calls of one turn over one candidate set.

The model writes one in the same call as its reading (plan-first, as InteRecAgent does), the
rule planner writes the same object by rules (`recagent.agent.planner`), and in loop mode the
calls the model makes one at a time are recorded as one. One executor runs any plan
(`recagent.agent.executor`); the run log, `/why`, `recagent logs` and the web page show it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.request import Intent

StepSource = Literal["rules", "llm", "loop"]
"""Who wrote a step: the rule planner, the model's plan, or the model in the tool loop."""


class PlanStep(BaseModel):
    """One tool call: the tool, its arguments (as the tool's argument model takes them), who
    wrote it, and (once run) how it went."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    source: StepSource = "rules"
    ok: bool | None = Field(None, description="None: not run (dropped).")
    error: str | None = None
    repaired: list[str] = Field(default_factory=list, description="What was fixed or dropped.")
    ms: float = 0.0

    def describe(self) -> str:
        """The step on one line, for logs and people."""
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.args.items() if v not in (None, []))
        state = "" if self.ok else " (dropped)" if self.ok is None else f" (failed: {self.error})"
        fixes = f" [repaired: {'; '.join(self.repaired)}]" if self.repaired else ""
        return f"{self.source}: {self.tool}({shown}){state}{fixes}"


class Plan(BaseModel):
    """The steps of one turn, and what kind of answer they serve."""

    model_config = ConfigDict(extra="forbid")

    kind: Intent = "recommend"
    steps: list[PlanStep] = Field(default_factory=list)
    mode: Literal["rules", "plan", "loop"] = Field(
        "rules",
        description="rules: the planner wrote it; plan: the model's plan (with the "
        "planner's steps it left out); loop: the model's calls, one at a time.",
    )

    def tools(self, source: StepSource | None = None) -> list[str]:
        """The tools of the steps that ran (of one source)."""
        return [s.tool for s in self.steps if s.ok and (source is None or s.source == source)]

    def describe(self) -> list[str]:
        return [s.describe() for s in self.steps]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["Plan", "PlanStep", "StepSource"]
