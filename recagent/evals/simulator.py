"""Simulated users for the conversation protocol.

The simulator knows the user's history and the target item and must never say the target's
title. Two kinds: `rules` (templated, offline, deterministic) and `llm` (an LLM plays the
user). Each runs twice in a report: with the target's attributes in its knowledge, and
without them (history only), since leaking attributes inflates the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from recagent.agent.llm import with_retries
from recagent.config import LLMConfig
from recagent.data.catalog import Catalog, Item
from recagent.data.genres import norm
from recagent.evals.protocols import Case
from recagent.prompts.registry import PromptRegistry

FOLLOW_UPS = ("more", "something different", "more like the first one", "older ones", "newer ones")


def redact(text: str, title: str) -> tuple[str, bool]:
    """Remove the target's title if the simulator said it anyway."""
    low, key = norm(text), norm(title)
    if key and key in low:
        words = text.split()
        kept = [w for w in words if norm(w) not in key.split() or len(norm(w)) < 4]
        return " ".join(kept) or "something else", True
    return text, False


@dataclass
class RulesSimulator:
    catalog: Catalog
    with_attributes: bool
    domain: str = "movies"
    calls: int = 0

    def message(self, case: Case, turn: int, shown: Sequence[str]) -> str:
        target = self.catalog[case.target]
        if self.with_attributes:
            return self._with_attributes(target, turn, shown)
        if turn == 0:
            recent = [self.catalog[i].title for i in case.history[-3:] if i in self.catalog]
            return f"Something like {recent[-1]}" if recent else f"Some good {self.domain}"
        return FOLLOW_UPS[(turn - 1) % len(FOLLOW_UPS)]

    def _with_attributes(self, target: Item, turn: int, shown: Sequence[str]) -> str:
        decade = f" from the {target.year // 10 * 10}s" if target.year else ""
        genres = list(target.genres)
        if turn == 0:
            return f"I'd like a {' '.join(g.lower() for g in genres[:1]) or 'good'} film{decade}"
        wrong = {g for i in shown if i in self.catalog for g in self.catalog[i].genres} - set(
            genres
        )
        if turn == 1 and len(genres) > 1:
            return f"a {' '.join(g.lower() for g in genres[:2])} film{decade}"
        if wrong:
            return f"no {sorted(wrong)[0].lower()}"
        return "more"


class LLMSimulator:
    """An LLM plays the user with the `simulator` prompt."""

    def __init__(
        self,
        model: BaseChatModel,
        catalog: Catalog,
        registry: PromptRegistry,
        cfg: LLMConfig,
        with_attributes: bool,
        domain: str = "movies",
    ) -> None:
        self.model = model
        self.catalog = catalog
        self.registry = registry
        self.cfg = cfg
        self.with_attributes = with_attributes
        self.domain = domain
        self.calls = 0

    def message(self, case: Case, turn: int, shown: Sequence[str]) -> str:
        target = self.catalog[case.target]
        attributes = ""
        if self.with_attributes:
            year = f"{target.year}" if target.year else "unknown year"
            attributes = f"genres {', '.join(target.genres) or 'unknown'}; released {year}"
        history = [self.catalog[i].label for i in case.history[-10:] if i in self.catalog]
        prompt = self.registry.render(
            "simulator",
            domain=self.domain,
            history="\n".join(history),
            target=target.label,
            attributes=attributes,
            turn=turn + 1,
            shown="\n".join(self.catalog[i].label for i in shown if i in self.catalog)
            or "(nothing yet)",
        )
        messages = [SystemMessage(content=prompt.system or ""), HumanMessage(content=prompt.text)]
        self.calls += 1
        reply = with_retries(lambda: self.model.invoke(messages), self.cfg)
        text = reply.content if isinstance(reply.content, str) else ""
        return " ".join(text.split())[:300] or "something else"


__all__ = ["FOLLOW_UPS", "LLMSimulator", "RulesSimulator", "redact"]
