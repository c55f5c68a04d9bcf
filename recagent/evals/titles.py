"""The `llm-titles` pipeline: the model alone, asked only for titles (as zero-shot
conversational recommenders are measured: He et al., CIKM 2023), grounded in the catalog.

One forced call of `suggest_titles` with the conversation (dialogues) or the person's recent
items and request (other protocols); each title is looked up in the catalog as the agent's
`suggest_titles` tool does it (typos and a missing year tolerated, titles the catalog lacks
dropped and counted, the person's own left out), in the model's order. No tool scores or
filters anything: this is what the model knows, alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from recagent.agent.llm import with_retries
from recagent.agent.request import ChatMessage
from recagent.config import LLMConfig
from recagent.data.dataset import Dataset
from recagent.evals.recommender import Recommendation
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import llm_schema
from recagent.tools.suggest import TOOL, SuggestTitlesArgs, ground_titles

HISTORY_SHOWN = 20
MAX_ASKED = 20  # as zero-shot conversational recommenders are asked (He et al. 2023)


class TitlesRecommender:
    """The model alone: the titles it names, found in the catalog, in its order."""

    name = "llm-titles"

    def __init__(
        self,
        model: BaseChatModel,
        dataset: Dataset,
        registry: PromptRegistry,
        cfg: LLMConfig,
        domain: str = "movies",
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.registry = registry
        self.cfg = cfg
        self.domain = domain

    def _tool(self, k: int) -> dict[str, Any]:
        params = llm_schema(SuggestTitlesArgs)
        params["properties"]["titles"].update(minItems=1, maxItems=k)
        params["required"] = ["titles"]
        return {
            "type": "function",
            "function": {
                "name": TOOL,
                "description": "The titles, best first.",
                "parameters": params,
            },
        }

    def ask(self, conversation: str, k: int, named: set[str]) -> Recommendation:
        """The model's `k` titles for `conversation`, grounded; `named`: item ids the person
        already has or named (left out)."""
        asked = min(k, MAX_ASKED)
        prompt = self.registry.render(
            "titles_only", domain=self.domain, k=asked, conversation=conversation
        )
        messages = [SystemMessage(content=prompt.system or ""), HumanMessage(content=prompt.text)]
        bound = self.model.bind_tools([self._tool(asked)], tool_choice=TOOL)
        reply = with_retries(lambda: bound.invoke(messages), self.cfg)
        titles: list[str] = []
        if isinstance(reply, AIMessage):
            for call in reply.tool_calls:
                if call["name"] == TOOL and isinstance(call["args"].get("titles"), list):
                    titles = [str(t) for t in call["args"]["titles"]][:asked]
                    break
        found, missing, seen = ground_titles(self.dataset, titles, named)
        usage: dict[str, Any] = dict(getattr(reply, "usage_metadata", None) or {})
        return Recommendation(
            item_ids=found[:k],
            llm_calls=1,
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            titles_proposed=len(found) + len(missing) + len(seen),
            titles_found=len(found) + len(seen),
        )

    def recommend_dialogue(
        self, messages: Sequence[ChatMessage], k: int, named: set[str]
    ) -> Recommendation:
        who = {"user": "Person", "assistant": "Recommender"}
        text = "\n".join(f"{who[m.role]}: {m.text}" for m in messages)
        return self.ask(f"The conversation so far:\n{text}", k, named)

    def recommend(
        self,
        history: list[str],
        k: int,
        request: str | None = None,
        candidates: list[str] | None = None,
        user_id: str | None = None,
    ) -> Recommendation:
        catalog = self.dataset.catalog
        shown = [catalog[i].label for i in history if i in catalog][-HISTORY_SHOWN:]
        lines = ["Their recent items, oldest first: " + ("; ".join(shown) or "(none)")]
        if request:
            lines.append(f"They ask: {request}")
        return self.ask("\n".join(lines), k, set(history))


__all__ = ["TitlesRecommender"]
