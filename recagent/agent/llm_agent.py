"""The LLM agent in plan mode: the model's side of a turn, in two calls that share one prompt
prefix (the static system prompt, the same two tools, the conversation) so a server's prompt
cache (llama.cpp's) reuses it:

- `understand`: with `read_request` (a named tool choice: it must answer with that
  structure; llama.cpp rejects 'required') the model returns its reading of the message,
  the kind of answer asked for, titles it knows and would recommend, and its plan of tool
  calls (`recagent.agent.model_plan` turns those into the plan the executor runs);
- `choose`: after the executor ran the plan and the candidates were ranked, the model picks
  and explains from the best eligible ones with `final_answer`.

Small models skip tools, invent ids and break JSON, so both calls are forced and bounded, and
whatever comes out is repaired field by field and goes through the guard.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from recagent.agent.events import Event, no_events
from recagent.agent.llm import LLMUnavailable, describe_error, with_retries
from recagent.agent.palr import latest, write_keywords
from recagent.agent.planner import strong_rank
from recagent.agent.reading import READ_TOOL, Reading, parse_reading, to_request
from recagent.agent.request import Request
from recagent.agent.schema import FinalAnswer, FinalPick
from recagent.agent.steps import scorer_name
from recagent.config import AgentConfig, LLMConfig
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import Evidence, ToolContext, carried_by, llm_schema
from recagent.tools.profile import current_profile

FINAL_TOOL = "final_answer"
EARLIER_CHARS = 400
EXPLANATION_CHARS = 140
MESSAGE_CHARS = 160
MODEL_TITLES_ASKED = 8  # titles of its own the model is asked for in a plan, at most
MODEL_TITLES_MIN = 3  # ... and at least
PLAN_STEPS = 4  # the most steps a model's plan may have (the planner adds what it leaves out)
TITLE_CHARS = 60
TASTE_CHARS = 80
PALR_CACHE = 256  # histories whose keywords are kept
EVIDENCE_WORDS = {
    "co_watched": "people who liked {titles} also liked it",
    "similar_to_items": "similar to {titles}",
    "similar_to_history": "close to {titles} from their history",
    "text_match": "matches the taste",
    "sequential": "{model} ranks it #{rank} of {n} for their history",
    "suggested": "you suggested it",
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
    malformed_calls: int = 0
    prompt_hashes: dict[str, str] = field(default_factory=dict)
    failed: str | None = None  # why the LLM failed for good, if it did
    truncated: int = 0  # explanations cut off at the length limit (rewritten from evidence)
    messages: list[BaseMessage] = field(default_factory=list)  # this turn's exchange so far
    repairs: Counter[str] = field(default_factory=Counter)  # what the reading needed fixed

    def count(self, reply: AIMessage) -> None:
        self.llm_calls += 1
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        self.malformed_calls += len(reply.invalid_tool_calls)
        if isinstance(reply.content, str) and reply.content.strip():
            self.text = reply.content.strip()


def _schema_tool(name: str, description: str, schema: type[Any]) -> dict[str, Any]:
    """An OpenAI tool definition from a pydantic model (compact: see `llm_schema`). Every
    property is marked required: servers that constrain output to the schema (llama.cpp)
    then make a small model write each field instead of skipping to the end; the model's
    answer is still validated with the defaults."""

    def require(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: require(v) for k, v in node.items()}
            if node.get("type") == "object" and "properties" in node:
                node["required"] = list(node["properties"])
        elif isinstance(node, list):
            node = [require(v) for v in node]
        return node

    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": require(llm_schema(schema)),
        },
    }


READ_TOOL_DEF = _schema_tool(READ_TOOL, " ".join((Reading.__doc__ or "").split()), Reading)
FINAL_TOOL_DEF = _schema_tool(
    FINAL_TOOL, " ".join((FinalAnswer.__doc__ or "").split()), FinalAnswer
)


@lru_cache(maxsize=64)
def _tool_defs(k: int, explain: bool) -> str:
    """Both tools of a turn, `final_answer` asking for exactly `k` items (a server that
    turns the schema into a grammar then makes a small model write all k instead of
    stopping early), with an explanation per item only when the model `explain`s. JSON,
    so the cache key is hashable and the list is built once."""
    final = copy.deepcopy(FINAL_TOOL_DEF)
    params = final["function"]["parameters"]
    params["properties"]["items"].update(minItems=k, maxItems=k)
    # on a CPU every generated token costs 40-100 ms: short answers are fast answers
    params["properties"]["message"]["maxLength"] = MESSAGE_CHARS
    pick = params["$defs"]["FinalPick"]
    if explain:
        pick["properties"]["explanation"]["maxLength"] = EXPLANATION_CHARS
    else:  # the tools' evidence words every explanation
        del pick["properties"]["explanation"]
    pick["required"] = ["item_id"]  # a model may leave the reason to the evidence
    read = copy.deepcopy(READ_TOOL_DEF)
    # a schema-constrained server makes a small model name titles instead of skipping them,
    # and short strings keep it from writing a whole answer into one
    params = read["function"]["parameters"]
    titles = params["properties"]["titles"]
    titles.update(minItems=MODEL_TITLES_MIN, maxItems=MODEL_TITLES_ASKED)
    titles["items"]["maxLength"] = TITLE_CHARS
    params["properties"]["asked_about"]["items"]["maxLength"] = TITLE_CHARS
    params["properties"]["taste"]["maxLength"] = TASTE_CHARS
    params["$defs"]["MovieFeeling"]["properties"]["title"]["maxLength"] = TITLE_CHARS
    params["properties"]["plan"]["maxItems"] = PLAN_STEPS
    step = params["$defs"]["ModelStep"]["properties"]
    step["query"]["maxLength"] = TASTE_CHARS
    step["titles"]["items"]["maxLength"] = TITLE_CHARS
    step["model"]["maxLength"] = 12
    return json.dumps([read, final])


def tool_defs(k: int, explain: bool = True) -> list[dict[str, Any]]:
    return list(json.loads(_tool_defs(k, explain)))


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


def _evidence_kinds(evidence: list[Evidence]) -> list[tuple[Evidence, str]]:
    """Each piece of evidence with the words it is cited by: a similar_items hit says what
    carried it (looks alike: similar to; liked by the same people: as co-watched; both)."""
    out: list[tuple[Evidence, str]] = []
    for ev in evidence:
        if ev.kind != "similar_to_items":
            out.append((ev, ev.kind))
            continue
        parts = carried_by(ev.detail)
        out += [(ev, "similar_to_items")] if "text" in parts else []
        out += [(ev, "co_watched")] if "cowatch" in parts else []
    return out


def evidence_line(ctx: ToolContext, item_id: str) -> str:
    """What the tools found for an item, in words the model can cite."""
    reasons: list[str] = []
    for ev, kind in _evidence_kinds(ctx.candidates.evidence(item_id)):
        template = EVIDENCE_WORDS.get(kind)
        if template is None:
            continue
        titles = ", ".join(ctx.catalog[i].title for i in ev.because_of[:2] if i in ctx.catalog)
        if "{titles}" in template and not titles:
            continue
        rank, n = strong_rank(ctx, item_id, ev.kind) or (0, 0)
        if "{rank}" in template and not rank:
            continue
        if ev.kind == "text_match" and (ev.score or 0.0) < ctx.match_threshold:
            continue
        model = scorer_name(ctx, ev.detail) if ev.kind == "sequential" else ""
        text = template.format(titles=titles, rank=rank, n=n, model=model)
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
        self._keywords: dict[tuple[str, ...], str] = {}

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
        self, llm: AgentTurn, messages: list[BaseMessage], tool: str, emit: Event, k: int
    ) -> AIMessage:
        """One model call with `tool` forced; its reply is counted and kept in the turn.
        Both calls of a turn bind the same two tools (one prompt prefix)."""
        explain = self.agent_cfg.explain == "model"
        bound = self.model.bind_tools(tool_defs(k, explain), tool_choice=tool)
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
        rules: Request,
        llm: AgentTurn,
        emit: Event = no_events,
        titles: list[str] | None = None,
        k: int = 10,
    ) -> tuple[Request | str, Reading | None]:
        """The model's reading of `message` (with the conversation before it) as a validated
        `Request` (or why it is no reading at all), and its raw reading (its plan and its own
        titles). `rules`: the rules' reading, which restores what the model lost; `titles`:
        catalog titles found in the conversation, listed for the model to say how the person
        feels about each; `k`: the count the answer will likely have (it shapes the shared
        tools). Raises `LLMUnavailable`."""
        who = current_profile(ctx)
        user = who.text if who.n_items else "a new user"
        notes = [f"user: {user}"]
        if titles:
            notes.append("titles mentioned: " + "; ".join(titles))
        ask = HumanMessage(content=f"{message or '(no message)'}\n\n[{'] ['.join(notes)}]")
        earlier = [_clipped(m) for m in history]
        messages: list[BaseMessage] = [SystemMessage(content=self._system(llm)), *earlier, ask]
        reply = self._call(llm, messages, READ_TOOL, emit, k)
        calls = [tc for tc in reply.tool_calls if tc["name"] == READ_TOOL]
        llm.messages = [*messages, _as_text(reply)]
        if not calls:
            return "no read_request call", None
        raw = calls[0]["args"]
        conversation = " ".join(
            str(m.content) for m in [*history, ask] if isinstance(m, HumanMessage)
        )
        request = to_request(raw, ctx.dataset, conversation, message, rules, llm.repairs)
        reading = parse_reading(raw, Counter())
        return request, reading if isinstance(reading, Reading) else None

    def choose(
        self,
        ctx: ToolContext,
        shortlist: list[str],
        llm: AgentTurn,
        emit: Event = no_events,
        picks: int = 10,
    ) -> None:
        """The model picks `picks` of `shortlist` (the tools' best eligible candidates), best
        first, and may explain each beyond its evidence; the answer lands in `llm.answer`."""
        lines = []
        for item_id in shortlist:
            item = ctx.catalog[item_id]
            year = f" ({item.year})" if item.year else ""
            lines.append(f"- {item_id}: {item.title}{year} — {evidence_line(ctx, item_id)}")
        how = (
            "add a short reason only where you can say more than its evidence line"
            if self.agent_cfg.explain == "model"
            else "their evidence explains them"
        )
        keywords = self.keywords(ctx, llm) if self.agent_cfg.palr and ctx.history else ""
        prompt = (
            (f"The person's preferences, from their history: {keywords}\n" if keywords else "")
            + f"The tools found these candidates, best first (item_id: title — evidence). Call "
            f"{FINAL_TOOL} with exactly {picks} of them that fit the request best, best first; "
            f"{how}:\n" + "\n".join(lines)
        )
        # the first call's prompt, then the candidates: the server reuses all of the first
        # call's prompt (its answer, already read, is not sent back)
        messages = [*llm.messages[:-1], HumanMessage(content=prompt)]
        reply = self._call(llm, messages, FINAL_TOOL, emit, picks)
        llm.messages = [*messages, _as_text(reply)]
        llm.answer = None
        for tc in reply.tool_calls:
            if tc["name"] != FINAL_TOOL:
                continue
            try:
                llm.answer = FinalAnswer.model_validate(tc["args"])
            except ValueError:
                llm.malformed_calls += 1
            break
        for pick in llm.answer.items if llm.answer else []:
            if len(pick.explanation) >= EXPLANATION_CHARS:  # cut off by the length limit
                pick.explanation = ""
                llm.truncated += 1
        if llm.answer is None and llm.text:
            llm.answer = FinalAnswer(items=picks_from_text(llm.text, ctx))

    def keywords(self, ctx: ToolContext, llm: AgentTurn) -> str:
        """PALR-lite: the person's preference keywords, written by the model from their
        latest items (prompt `palr_keywords`), once per history; '' when the model fails."""
        shown = latest(ctx.catalog, ctx.history)
        if shown in self._keywords:
            return self._keywords[shown]
        try:
            words, reply = write_keywords(
                self.model, self.registry, self.llm_cfg, self.agent_cfg.domain, ctx.catalog, shown
            )
        except LLMUnavailable:
            return ""
        llm.count(reply)
        if len(self._keywords) >= PALR_CACHE:
            self._keywords.pop(next(iter(self._keywords)))
        self._keywords[shown] = words
        return words


def _clipped(message: BaseMessage) -> BaseMessage:
    """An earlier message, at most `EARLIER_CHARS` long (on a CPU, prompt length is time)."""
    text = message.content if isinstance(message.content, str) else ""
    if len(text) <= EARLIER_CHARS:
        return message
    return message.model_copy(update={"content": text[:EARLIER_CHARS] + " ..."})


def _as_text(reply: AIMessage) -> AIMessage:
    """The model's tool call, kept in the conversation as plain assistant text: the next
    call then needs no tool-result message (which some servers' chat templates drop or
    garble, breaking the shared prompt prefix), and its prefix is exactly what came before."""
    calls = [f"{tc['name']}: {json.dumps(tc['args'], sort_keys=True)}" for tc in reply.tool_calls]
    text = reply.content if isinstance(reply.content, str) else ""
    return AIMessage(content="\n".join([text, *calls]).strip() or "(no answer)")


__all__ = [
    "FINAL_TOOL",
    "AgentTurn",
    "ToolCallingAgent",
    "evidence_line",
    "picks_from_text",
]
