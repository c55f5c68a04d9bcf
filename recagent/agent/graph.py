"""The LLM agent: the model's side of a turn, in two calls that share one prompt prefix (the
static system prompt, the same two tools, the conversation) so a server's prompt cache
(llama.cpp's) reuses it:

- `understand`: the model records its reading of the message with `read_request` (a named
  tool choice: it must answer with that structure; llama.cpp rejects 'required');
- `choose`: after the planner's tools gathered and ranked candidates, the model picks and
  explains from the best eligible ones with `final_answer`. If none fit, it may ask for more
  (`search_more`); the session then searches once more and asks it again.

Small models skip tools, invent ids and break JSON, so both calls are forced and bounded, and
whatever comes out goes through the guard.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from recagent.agent.llm import LLMUnavailable, describe_error, with_retries
from recagent.agent.reading import READ_TOOL, Reading, to_request
from recagent.agent.request import Request
from recagent.agent.schema import FinalAnswer, FinalPick
from recagent.agent.turn import Turn
from recagent.config import AgentConfig, LLMConfig
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import ToolContext, llm_schema
from recagent.tools.profile import current_profile

FINAL_TOOL = "final_answer"
Event = Callable[[str, Any], None]
EVIDENCE_WORDS = {
    "co_watched": "people who liked {titles} also liked it",
    "similar_to_items": "similar to {titles}",
    "similar_to_history": "close to {titles} from their history",
    "text_match": "matches the taste",
    "sequential": "SASRec rank {rank} for their history",
    "popularity": "popular lately",
}


@dataclass
class AgentTurn:
    """What the model did in one turn, before the guard."""

    answer: FinalAnswer | None
    text: str = ""
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_sequence: list[str] = field(default_factory=list)
    malformed_calls: int = 0
    prompt_hashes: dict[str, str] = field(default_factory=dict)
    failed: str | None = None  # why the LLM failed for good, if it did
    messages: list[BaseMessage] = field(default_factory=list)  # this turn's exchange so far

    def count(self, reply: AIMessage) -> None:
        self.llm_calls += 1
        usage = reply.usage_metadata or {}
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        self.malformed_calls += len(reply.invalid_tool_calls)
        self.tool_sequence.extend(tc["name"] for tc in reply.tool_calls)
        if isinstance(reply.content, str) and reply.content.strip():
            self.text = reply.content.strip()


def _schema_tool(name: str, description: str, schema: type[Any]) -> dict[str, Any]:
    """An OpenAI tool definition from a pydantic model (compact: see `llm_schema`)."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": llm_schema(schema)},
    }


READ_TOOL_DEF = _schema_tool(READ_TOOL, " ".join((Reading.__doc__ or "").split()), Reading)
FINAL_TOOL_DEF = _schema_tool(
    FINAL_TOOL, " ".join((FinalAnswer.__doc__ or "").split()), FinalAnswer
)


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


def evidence_line(ctx: ToolContext, item_id: str) -> str:
    """What the tools found for an item, in words the model can cite."""
    reasons: list[str] = []
    for ev in ctx.candidates.evidence(item_id):
        template = EVIDENCE_WORDS.get(ev.kind)
        if template is None:
            continue
        titles = ", ".join(ctx.catalog[i].title for i in ev.because_of[:2] if i in ctx.catalog)
        if "{titles}" in template and not titles:
            continue
        text = template.format(titles=titles, rank=ev.rank)
        if text not in reasons:
            reasons.append(text)
    return "; ".join(reasons[:3]) or "passes the filters"


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

    # ---- the two-call turn -------------------------------------------------------------------

    def _system(self, llm: AgentTurn) -> str:
        """The static system prompt (the same for every call and turn: a cacheable prefix)."""
        style = self.registry.render("explanation_style")
        system = self.registry.render(
            "system", domain=self.agent_cfg.domain, explanation_style=style.text
        )
        llm.prompt_hashes.update(system=system.hash, explanation_style=style.hash)
        return system.text

    def _call(
        self, llm: AgentTurn, messages: list[BaseMessage], tool: str, emit: Event
    ) -> AIMessage:
        """One model call with `tool` forced; its reply is counted and kept in the turn."""
        bound = self.model.bind_tools([READ_TOOL_DEF, FINAL_TOOL_DEF], tool_choice=tool)
        try:
            reply = with_retries(lambda: bound.invoke(messages), self.llm_cfg)
        except (openai.OpenAIError, httpx.HTTPError, TimeoutError) as exc:
            raise LLMUnavailable(describe_error(exc)) from exc
        if not isinstance(reply, AIMessage):
            raise LLMUnavailable("the model gave no message")
        llm.count(reply)
        if reply.content and isinstance(reply.content, str):
            emit("token", reply.content)
        for tc in reply.tool_calls:
            emit("tool_call", (tc["name"], tc["args"]))
        return reply

    def understand(
        self,
        ctx: ToolContext,
        history: list[BaseMessage],
        message: str,
        llm: AgentTurn,
        emit: Event | None = None,
    ) -> Request | str:
        """The model's reading of `message` (with the conversation before it) as a
        validated `Request`, or why its reading is invalid. Raises `LLMUnavailable`."""
        emit = emit or (lambda kind, data: None)
        who = current_profile(ctx)
        user = who.text if who.n_items else "a new user"
        ask = HumanMessage(content=f"{message or '(no message)'}\n\n[user: {user}]")
        messages: list[BaseMessage] = [SystemMessage(content=self._system(llm)), *history, ask]
        reply = self._call(llm, messages, READ_TOOL, emit)
        calls = [tc for tc in reply.tool_calls if tc["name"] == READ_TOOL]
        llm.messages = [*messages, reply]
        if not calls:
            return "no read_request call"
        call = calls[0]
        llm.messages.append(
            ToolMessage(content="Reading recorded.", tool_call_id=call["id"] or READ_TOOL)
        )
        conversation = " ".join(
            str(m.content) for m in [*history, ask] if isinstance(m, HumanMessage)
        )
        return to_request(call["args"], ctx.dataset, conversation, message)

    def choose(
        self,
        ctx: ToolContext,
        turn: Turn,
        shortlist: list[str],
        llm: AgentTurn,
        emit: Event | None = None,
    ) -> None:
        """The model picks `turn.k` of `shortlist` (the tools' best eligible candidates) and
        explains each from its evidence; the answer lands in `llm.answer`."""
        emit = emit or (lambda kind, data: None)
        lines = []
        for item_id in shortlist:
            item = ctx.catalog[item_id]
            year = f" ({item.year})" if item.year else ""
            lines.append(f"- {item_id}: {item.title}{year} — {evidence_line(ctx, item_id)}")
        prompt = (
            f"The tools found these candidates, best first (item_id: title — evidence). Call "
            f"{FINAL_TOOL} with the {turn.k} that fit the request best, best first, each with "
            "one sentence saying why for this person from its evidence:\n" + "\n".join(lines)
        )
        messages = [*llm.messages, HumanMessage(content=prompt)]
        reply = self._call(llm, messages, FINAL_TOOL, emit)
        llm.messages = [*messages, reply]
        llm.answer = None
        for tc in reply.tool_calls:
            if tc["name"] != FINAL_TOOL:
                continue
            llm.messages.append(
                ToolMessage(content="Answer recorded.", tool_call_id=tc["id"] or FINAL_TOOL)
            )
            try:
                llm.answer = FinalAnswer.model_validate(tc["args"])
            except ValueError:
                llm.malformed_calls += 1
            break
        if llm.answer is None and llm.text:
            llm.answer = FinalAnswer(items=picks_from_text(llm.text, ctx))


__all__ = [
    "FINAL_TOOL",
    "AgentTurn",
    "ToolCallingAgent",
    "evidence_line",
    "picks_from_text",
]
