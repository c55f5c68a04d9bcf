"""Understand: a message -> the `Request` a turn acts on.

Offline (and in loop mode) the rules read it. In plan mode the model reads it, in the same
call as its plan; its reading is repaired field by field against the rules' (what it lost
that the message plainly says is restored, counted). References to this session's own
answers ("more like the second one", "not the third", "older ones") are the rules' to read:
the model sees no numbered list. Titles the model left out keep the rules' feeling (small
models drop them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from recagent.agent.conversation import Conversation
from recagent.agent.events import Event
from recagent.agent.llm import LLMUnavailable
from recagent.agent.llm_agent import AgentTurn, ToolCallingAgent
from recagent.agent.reading import Reading
from recagent.agent.request import Request, clamp_k
from recagent.agent.rules import RuleReader
from recagent.tools.base import ToolContext

MODEL_PICKS = 10  # the model chooses and explains at most this many; the tools rank the rest


@dataclass
class Understood:
    """The reading a turn acts on, the other reader's when it differs, why the model failed
    (None when it did not, or there is none), and the model's raw reading (its plan)."""

    request: Request
    rules: Request
    rival: Request | None = None
    fallback: str | None = None
    model: Reading | None = None
    repairs: Counter[str] = field(default_factory=Counter)


def chat_messages(conversation: Conversation) -> list[BaseMessage]:
    """The recent conversation as the model reads it."""
    return [
        HumanMessage(content=m.text) if m.role == "user" else AIMessage(content=m.text)
        for m in conversation.messages
    ]


def understand(
    message: str,
    reader: RuleReader,
    conversation: Conversation,
    ctx: ToolContext,
    agent: ToolCallingAgent | None,
    llm: AgentTurn,
    emit: Event,
    k: int | None,
    default_k: int,
) -> Understood:
    """Read `message` by rules and, with `agent` (plan mode), by the model."""
    rules = reader.read(message)
    if agent is None:
        return Understood(request=rules, rules=rules)
    emit("step", "reading the request and planning")
    catalog = ctx.catalog
    known = [catalog[i].label for i in conversation.feelings if i in catalog]
    found = [m.title for m in rules.mentions if m.item_id and m.title not in known]
    count = clamp_k(k if k is not None else rules.k, [], default_k)
    try:
        reading, raw = agent.understand(
            ctx,
            chat_messages(conversation),
            message,
            rules,
            llm,
            emit,
            titles=known + found,
            k=min(MODEL_PICKS, count),
        )
    except LLMUnavailable as exc:
        llm.failed = str(exc)
        return Understood(request=rules, rules=rules, fallback=str(exc))
    repairs = Counter(llm.repairs)
    if isinstance(reading, str):  # no reading at all
        repairs["invalid_reading"] += 1
        rules.notices.append(f"the model's reading was invalid ({reading}); used the rules")
        return Understood(request=rules, rules=rules, repairs=repairs)
    reading.more_like_rank, reading.older = rules.more_like_rank, rules.older
    reading.newer, reading.more = rules.newer, rules.more
    reading.mentions += [m for m in rules.mentions if m.rank is not None]
    named = {m.item_id for m in reading.mentions}
    reading.mentions += [
        m for m in rules.mentions if m.item_id and m.item_id not in named and m.rank is None
    ]
    rival = None if reading.same_reading(rules) else rules
    return Understood(request=reading, rules=rules, rival=rival, model=raw, repairs=repairs)


__all__ = ["MODEL_PICKS", "Understood", "chat_messages", "understand"]
