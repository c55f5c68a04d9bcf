"""Loop mode (`[agent] mode = "loop"`), for capable models: the model calls the tools one at a
time through LangChain's agent (`create_agent`), with middleware for a step budget
(`ModelCallLimitMiddleware`), a tool-call limit (`ToolCallLimitMiddleware`) and retries of
transient model failures (`ModelRetryMiddleware`), and ends by calling `final_answer`.

Every call the model makes goes through the executor (repaired, run, recorded), so the calls
are the plan that ran; each is streamed to whoever watches the turn as it is made. If the
model never scored its candidates, the planner's finishing steps (the hard filters, the
sequence model's scores) run after it, labelled as the rules'. The same ranking and guard
close the turn as in plan mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
from langchain.agents import create_agent
from langchain.agents.middleware import (
    ModelCallLimitMiddleware,
    ModelRetryMiddleware,
    ToolCallLimitMiddleware,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import ValidationError

from recagent.agent.events import Event
from recagent.agent.executor import Executor
from recagent.agent.llm import LLMUnavailable, describe_error, is_transient
from recagent.agent.llm_agent import FINAL_TOOL, AgentTurn
from recagent.agent.plan import Plan, PlanStep
from recagent.agent.planner import finish_steps, own_title_steps, recall_steps, seed_steps
from recagent.agent.schema import FinalAnswer
from recagent.agent.turn import Turn
from recagent.config import AgentConfig, LLMConfig
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import ToolContext, llm_schema
from recagent.tools.profile import current_profile
from recagent.tools.registry import langchain_tools

LOOP_TOOLS = (
    "search_items",
    "similar_items",
    "suggest_titles",
    "score_candidates",
    "lookup_items",
    "filter_items",
    "summarize_profile",
    "get_history",
)


def _final_tool(llm: AgentTurn) -> BaseTool:
    """`final_answer`: records the model's answer and ends the loop."""

    def final_answer(**kwargs: Any) -> str:
        try:
            llm.answer = FinalAnswer.model_validate(kwargs)
        except ValidationError:
            llm.malformed_calls += 1
            return "invalid answer: give items as [{item_id, explanation}]"
        return "answer recorded"

    return StructuredTool.from_function(
        func=final_answer,
        name=FINAL_TOOL,
        description=" ".join((FinalAnswer.__doc__ or "").split()),
        args_schema=llm_schema(FinalAnswer),
        return_direct=True,
    )


def _short(ctx: ToolContext, turn: Turn) -> bool:
    """The loop's candidates cannot fill the answer (only the ones that pass the turn's
    constraints count)."""
    c = turn.constraints
    fit = sum(c.admits(ctx.catalog[i]) is None for i in ctx.candidates.ids())
    return fit < turn.k


def _constraints(turn: Turn) -> str:
    """What the guard will hold the answer to, for the model to know up front."""
    c = turn.request.constraints.describe()
    return "; ".join([*([f"constraints: {c}"] if c else []), f"answer with {turn.k} items"])


class ToolLoop:
    """The model's own tool loop for one turn."""

    def __init__(
        self,
        model: BaseChatModel,
        registry: PromptRegistry,
        llm_cfg: LLMConfig,
        agent_cfg: AgentConfig,
    ) -> None:
        self.model = model
        self.registry = registry
        self.llm_cfg = llm_cfg
        self.agent_cfg = agent_cfg

    def _system(self, llm: AgentTurn) -> str:
        style = self.registry.render("explanation_style")
        system = self.registry.render(
            "tool_loop", domain=self.agent_cfg.domain, explanation_style=style.text
        )
        llm.prompt_hashes.update(tool_loop=system.hash, explanation_style=style.hash)
        return system.text

    def run(
        self,
        ctx: ToolContext,
        turn: Turn,
        executor: Executor,
        history: list[BaseMessage],
        message: str,
        llm: AgentTurn,
        emit: Event,
    ) -> Plan:
        """Let the model call the tools until it answers or the budget is spent; returns the
        plan that ran (its calls, then any finishing steps it left out). Raises
        `LLMUnavailable` when the model fails for good."""
        who = current_profile(ctx)
        user = who.text if who.n_items else "a new user"
        ask = HumanMessage(
            content=f"{message or '(no message)'}\n\n[user: {user}] [{_constraints(turn)}]"
        )
        tools = [
            *langchain_tools(LOOP_TOOLS, lambda name, args: executor.call(name, args)),
            _final_tool(llm),
        ]
        cfg = self.agent_cfg
        middleware: list[Any] = [  # the step budget, the tool-call limit, retries
            ModelCallLimitMiddleware(run_limit=cfg.loop_max_steps, exit_behavior="end"),
            ToolCallLimitMiddleware(run_limit=cfg.loop_max_tool_calls, exit_behavior="end"),
            ModelRetryMiddleware(
                max_retries=self.llm_cfg.max_retries,
                retry_on=is_transient,
                on_failure="error",
                max_delay=self.llm_cfg.backoff_max_s,
            ),
        ]
        agent = create_agent(
            self.model, tools, system_prompt=self._system(llm), middleware=middleware
        )
        known = {*LOOP_TOOLS, FINAL_TOOL}
        try:
            for message_ in self._stream(agent, [*history, ask]):
                llm.count(message_)
                if message_.content and isinstance(message_.content, str):
                    emit("token", message_.content)
                for tc in message_.tool_calls:
                    emit("tool_call", (tc["name"], tc["args"]))
                    if tc["name"] not in known:  # the agent answers it; the plan counts it
                        executor.step(PlanStep(tool=tc["name"], args=tc["args"], source="loop"))
        except (openai.OpenAIError, httpx.HTTPError, TimeoutError) as exc:
            raise LLMUnavailable(describe_error(exc)) from exc
        if llm.answer is None and llm.llm_calls >= cfg.loop_max_steps:
            executor.execution.repairs["step_budget_reached"] += 1
        for step in self._rest(ctx, turn, executor):
            executor.step(step)
        return executor.execution.plan

    @staticmethod
    def _rest(ctx: ToolContext, turn: Turn, executor: Executor) -> list[PlanStep]:
        """The planner's steps the loop left out and the answer needs: recall when its
        candidates cannot fill the answer, the person's own titles for a ranking or a
        verdict, the hard filters, and scores for what is not scored yet."""
        steps: list[PlanStep] = []
        if turn.kind == "recommend" and _short(ctx, turn):
            steps += [*seed_steps(turn), *recall_steps(turn, ctx.catalog)]
        steps += own_title_steps(turn)
        ran = executor.execution.plan.steps
        scored = any(s.tool == "score_candidates" and s.ok for s in ran)
        for step in finish_steps(turn):
            if step.tool == "score_candidates" and scored and turn.kind == "recommend":
                continue  # the model scored its candidates itself
            steps.append(step)
        return steps

    @staticmethod
    def _stream(agent: Any, messages: list[BaseMessage]) -> Iterator[AIMessage]:
        """The model's messages as the agent makes them."""
        for update in agent.stream({"messages": messages}, stream_mode="updates"):
            for node, value in update.items():
                if node != "model" or not isinstance(value, dict):
                    continue
                for m in value.get("messages", []):
                    if isinstance(m, AIMessage):
                        yield m


__all__ = ["LOOP_TOOLS", "ToolLoop"]
