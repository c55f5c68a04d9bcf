"""The LLM agent: LangChain `create_agent` over the recommender tools.

Small models skip tools, invent titles and break JSON, so the graph is built to survive
them: the first model call is forced to a tool the request clearly needs; the final answer
is an ordinary tool (`final_answer`, return-direct) instead of a provider JSON mode; an
explicit step limit ends runaway loops; transient HTTP failures are retried. Whatever comes
out still goes through the guard.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelCallLimitMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import StructuredTool

from recagent.agent.llm import LLMUnavailable, describe_error, with_retries
from recagent.agent.request import Request
from recagent.agent.schema import FinalAnswer, FinalPick
from recagent.config import AgentConfig, LLMConfig
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import TOOLS, ToolContext, langchain_tools
from recagent.tools.profile import current_profile

FINAL_TOOL = "final_answer"
Event = Callable[[str, Any], None]


@dataclass
class AgentTurn:
    """What one LLM turn produced, before the guard."""

    answer: FinalAnswer | None
    text: str = ""
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_sequence: list[str] = field(default_factory=list)
    malformed_calls: int = 0
    prompt_hashes: dict[str, str] = field(default_factory=dict)


class _ForceTool(AgentMiddleware):
    """Force a named tool: `first` on the turn's first model call, `always` on every call.
    (A named tool choice works on OpenAI and on llama.cpp's server; 'required' does not.)"""

    def __init__(self, first: str | None = None, always: str | None = None) -> None:
        super().__init__()
        self.first = first
        self.always = always

    def wrap_model_call(self, request, handler):  # type: ignore[no-untyped-def]
        if self.always:
            request = request.override(tool_choice=self.always)
        elif self.first and not any(
            isinstance(m, ToolMessage) for m in _this_turn(request.messages)
        ):
            request = request.override(tool_choice=self.first)
        return handler(request)


class _Retry(AgentMiddleware):
    """Bounded, jittered retries of each model call on transient failures."""

    def __init__(self, cfg: LLMConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def wrap_model_call(self, request, handler):  # type: ignore[no-untyped-def]
        return with_retries(lambda: handler(request), self.cfg)


def _this_turn(messages: list[BaseMessage]) -> list[BaseMessage]:
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    return messages[last_human + 1 :]


def _final_answer_tool(holder: dict[str, FinalAnswer]) -> StructuredTool:
    """The answer as an ordinary tool call (no provider JSON mode needed); ends the run."""

    def submit(**kwargs: Any) -> str:
        holder["answer"] = FinalAnswer.model_validate(kwargs)
        return "Recommendations recorded."

    return StructuredTool.from_function(
        func=submit,
        name=FINAL_TOOL,
        description=FinalAnswer.__doc__ or "",
        args_schema=FinalAnswer,
        return_direct=True,
        handle_validation_error=lambda exc: (
            f"invalid {FINAL_TOOL}: {exc.error_count()} problem(s); send "
            '{"items": [{"item_id": "...", "explanation": "..."}], "message": "..."}'
        ),
    )


def first_tool(request: Request, ctx: ToolContext) -> str | None:
    """The tool the request obviously needs first (None when it is not available)."""
    if request.reference_titles:
        name = "lookup_items"
    elif request.query:
        name = "search_items"
    elif ctx.history:
        name = "similar_items"
    else:
        name = "filter_items"
    return name if name in TOOLS else None


def picks_from_text(text: str, ctx: ToolContext) -> list[FinalPick]:
    """When a model answers in prose: the returned items it names (by id or title), in order."""
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"\b[\w-]+\b", text):
        if m.group() in ctx.catalog and ctx.candidates.returned(m.group()):
            found.append((m.start(), m.group()))
    low = text.lower()
    for item_id in ctx.dataset.titles.mentions(text):
        if ctx.candidates.returned(item_id):
            pos = low.find(ctx.catalog[item_id].title.lower())
            found.append((pos if pos >= 0 else len(text), item_id))
    ordered: list[str] = []
    for _, item_id in sorted(found):
        if item_id not in ordered:
            ordered.append(item_id)
    return [FinalPick(item_id=i) for i in ordered]


class ToolCallingAgent:
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

    def run(
        self,
        ctx: ToolContext,
        message: str,
        request: Request,
        k: int,
        history: list[BaseMessage],
        on_event: Event | None = None,
        shortlist: Callable[[], list[str]] | None = None,
    ) -> AgentTurn:
        """One turn. Raises `LLMUnavailable` when the LLM fails for good.

        If the model stops without calling final_answer (small models often reply in prose
        or print a tool call as text), it is asked once more with final_answer forced and,
        when `shortlist` is given, the tools' best eligible candidates to choose from."""
        emit = on_event or (lambda kind, data: None)
        holder: dict[str, FinalAnswer] = {}
        profile = current_profile(ctx)
        style = self.registry.render("explanation_style")
        system = self.registry.render(
            "system",
            domain=self.agent_cfg.domain,
            k=k,
            explanation_style=style.text,
            user=profile.text if profile.n_items else "a new user with no history",
        )
        tools = [*langchain_tools(ctx), _final_answer_tool(holder)]
        turn = AgentTurn(
            answer=None, prompt_hashes={"system": system.hash, "explanation_style": style.hash}
        )
        messages: list[BaseMessage] = [*history, HumanMessage(content=message)]
        force = _ForceTool(first=first_tool(request, ctx))
        messages = self._invoke(tools, system.text, force, messages, turn, emit)
        if "answer" not in holder:
            nudge = HumanMessage(content=self._nudge(ctx, k, shortlist() if shortlist else []))
            self._invoke(
                tools, system.text, _ForceTool(always=FINAL_TOOL), [*messages, nudge], turn, emit
            )
        turn.answer = holder.get("answer")
        return turn

    @staticmethod
    def _nudge(ctx: ToolContext, k: int, candidates: list[str]) -> str:
        text = f"Now call {FINAL_TOOL} with the {k} best items for the request, best first, each "
        if not candidates:
            return text + "with a one-sentence explanation, using item_ids from the tool results."
        lines = []
        for item_id in candidates:
            item = ctx.catalog[item_id]
            year = f" ({item.year})" if item.year else ""
            lines.append(f"- {item_id}: {item.title}{year}, {', '.join(item.genres)}")
        return (
            text + "with a one-sentence explanation. Choose ONLY from these candidates, which "
            "the tools found and ranked (item_id: title):\n" + "\n".join(lines)
        )

    def _invoke(
        self,
        tools: list[Any],
        system: str,
        force: _ForceTool,
        messages: list[BaseMessage],
        turn: AgentTurn,
        emit: Event,
    ) -> list[BaseMessage]:
        agent = create_agent(
            self.model,
            tools,
            system_prompt=system,
            middleware=[
                force,
                _Retry(self.llm_cfg),
                ModelCallLimitMiddleware(run_limit=self.agent_cfg.max_steps, exit_behavior="end"),
            ],
        )
        state: dict[str, Any] = {"messages": messages}
        try:
            for mode, data in agent.stream(
                {"messages": messages}, stream_mode=["messages", "values"]
            ):
                if mode == "messages":
                    chunk = data[0]
                    if (
                        isinstance(chunk, AIMessageChunk)
                        and isinstance(chunk.content, str)
                        and chunk.content
                    ):
                        emit("token", chunk.content)
                else:
                    self._events(state["messages"], data.get("messages", []), emit)
                    state = data
        except (openai.OpenAIError, httpx.HTTPError, TimeoutError) as exc:
            raise LLMUnavailable(describe_error(exc)) from exc
        new = state["messages"][len(messages) :]
        for msg in new:
            if isinstance(msg, AIMessage):
                turn.llm_calls += 1
                usage = msg.usage_metadata or {}
                turn.input_tokens += int(usage.get("input_tokens", 0))
                turn.output_tokens += int(usage.get("output_tokens", 0))
                turn.malformed_calls += len(msg.invalid_tool_calls)
                turn.tool_sequence.extend(tc["name"] for tc in msg.tool_calls)
                if isinstance(msg.content, str) and msg.content.strip():
                    turn.text = msg.content.strip()
        return list(state["messages"])

    @staticmethod
    def _events(before: list[BaseMessage], after: list[BaseMessage], emit: Event) -> None:
        for msg in after[len(before) :]:
            if isinstance(msg, AIMessage):
                for tc in msg.tool_calls:
                    emit("tool_call", (tc["name"], tc["args"]))
            elif isinstance(msg, ToolMessage):
                emit("tool_result", msg.name)


__all__ = ["FINAL_TOOL", "AgentTurn", "ToolCallingAgent", "first_tool", "picks_from_text"]
