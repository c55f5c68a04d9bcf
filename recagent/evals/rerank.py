"""The `llm-rerank` pipeline's ranker: one LLM call orders a numbered candidate list.

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

from recagent.agent.llm import complete
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
        item = self.catalog[item_id]
        year = f" ({item.year})" if item.year else ""
        return f"{item_id} | {item.title}{year} | {', '.join(item.genres)}"

    def __call__(
        self, history: Sequence[str], candidates: list[str], k: int
    ) -> tuple[list[str], dict[str, int]]:
        shown = [i for i in history if i in self.catalog][-HISTORY_SHOWN:]
        prompt = self.registry.render(
            "rerank",
            domain=self.domain,
            n=len(candidates),
            history="\n".join(self._line(i) for i in shown) or "(nothing yet)",
            candidates="\n".join(self._line(i) for i in candidates),
        )
        text, reply = complete(self.model, prompt, self.cfg)
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        return parse_ids(text), {
            "calls": 1,
            "input_tokens": int(usage.get("input_tokens", 0)),
            "output_tokens": int(usage.get("output_tokens", 0)),
        }


__all__ = ["LLMRanker", "parse_ids"]
