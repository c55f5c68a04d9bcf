"""The `llm-rerank` pipeline's ranker: one LLM call orders a numbered candidate list; and the
`palr` pipeline's (PALR-lite, after Yang et al. 2023): a first call writes the user's
preference keywords from their history, a second orders the candidates given them.

The raw order the model wrote is returned (ids outside the list, repeats and all), so the
harness can measure how often an LLM ranker breaks the list; the metric itself only counts
the target where the model really put it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage

from recagent.agent.llm import complete
from recagent.agent.palr import item_line, write_keywords
from recagent.config import LLMConfig
from recagent.data.catalog import Catalog
from recagent.prompts.registry import PromptRegistry

HISTORY_SHOWN = 15
_JSON_LIST = re.compile(r"\[[^\[\]]*\]", re.S)
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def parse_ids(text: str) -> list[str]:
    """Item ids in the order written: the first JSON list of strings/numbers, else every
    id-like token."""
    for match in _JSON_LIST.finditer(text):
        try:
            values = json.loads(match.group())
        except json.JSONDecodeError:
            continue
        if isinstance(values, list) and values:
            return [str(v).strip() for v in values if isinstance(v, str | int)]
    return _TOKEN.findall(text)


def _count(usage: dict[str, int], reply: AIMessage) -> None:
    """Add one call and its tokens to `usage`."""
    used: dict[str, Any] = dict(reply.usage_metadata or {})
    usage["calls"] = usage.get("calls", 0) + 1
    for key in ("input_tokens", "output_tokens"):
        usage[key] = usage.get(key, 0) + int(used.get(key, 0))


class LLMRanker:
    def __init__(
        self,
        model: BaseChatModel,
        catalog: Catalog,
        registry: PromptRegistry,
        cfg: LLMConfig,
        domain: str = "movies",
    ) -> None:
        self.model = model
        self.catalog = catalog
        self.registry = registry
        self.cfg = cfg
        self.domain = domain

    def _line(self, item_id: str) -> str:
        return item_line(self.catalog, item_id)

    def _history(self, history: Sequence[str]) -> str:
        shown = [i for i in history if i in self.catalog][-HISTORY_SHOWN:]
        return "\n".join(self._line(i) for i in shown) or "(nothing yet)"

    def _ask(self, name: str, usage: dict[str, int], **values: Any) -> str:
        text, reply = complete(self.model, self.registry.render(name, **values), self.cfg)
        _count(usage, reply)
        return text

    def __call__(
        self, history: Sequence[str], candidates: list[str], k: int
    ) -> tuple[list[str], dict[str, int]]:
        usage: dict[str, int] = {}
        text = self._ask(
            "rerank",
            usage,
            domain=self.domain,
            n=len(candidates),
            history=self._history(history),
            candidates="\n".join(self._line(i) for i in candidates),
        )
        return parse_ids(text), usage


class PALRRanker(LLMRanker):
    """PALR-lite: the user's preference keywords first, then the ordering given them."""

    def __call__(
        self, history: Sequence[str], candidates: list[str], k: int
    ) -> tuple[list[str], dict[str, int]]:
        usage: dict[str, int] = {}
        keywords, reply = write_keywords(
            self.model, self.registry, self.cfg, self.domain, self.catalog, history
        )
        _count(usage, reply)
        shown = self._history(history)
        text = self._ask(
            "palr_rank",
            usage,
            domain=self.domain,
            keywords=keywords or "(none)",
            n=len(candidates),
            history=shown,
            candidates="\n".join(self._line(i) for i in candidates),
        )
        return parse_ids(text), usage


__all__ = ["LLMRanker", "PALRRanker", "parse_ids"]
