"""PALR-lite's first step (after Yang et al. 2023): the model writes a person's preference
keywords from their latest items (prompt `palr_keywords`). The `palr` evaluation pipeline and
`[agent] palr` both ask through here."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage

from recagent.agent.llm import complete
from recagent.config import LLMConfig
from recagent.data.catalog import Catalog
from recagent.prompts.registry import PromptRegistry

HISTORY_SHOWN = 15  # the latest items the keywords are written from
KEYWORD_CHARS = 300


def item_line(catalog: Catalog, item_id: str) -> str:
    """'1234 | Brazil (1985) | Fantasy, Sci-Fi': how an LLM prompt lists an item."""
    item = catalog[item_id]
    return f"{item_id} | {item.label} | {', '.join(item.genres)}"


def latest(catalog: Catalog, history: Sequence[str]) -> tuple[str, ...]:
    """The history's latest `HISTORY_SHOWN` items the catalog has, oldest first."""
    return tuple(i for i in history if i in catalog)[-HISTORY_SHOWN:]


def write_keywords(
    model: BaseChatModel,
    registry: PromptRegistry,
    cfg: LLMConfig,
    domain: str,
    catalog: Catalog,
    history: Sequence[str],
) -> tuple[str, AIMessage]:
    """The keywords (whitespace collapsed, at most `KEYWORD_CHARS`) and the reply (for its
    token usage). Raises `LLMUnavailable`."""
    lines = "\n".join(item_line(catalog, i) for i in latest(catalog, history))
    prompt = registry.render("palr_keywords", domain=domain, history=lines or "(nothing yet)")
    text, reply = complete(model, prompt, cfg)
    return " ".join(text.split())[:KEYWORD_CHARS], reply


__all__ = ["HISTORY_SHOWN", "KEYWORD_CHARS", "item_line", "latest", "write_keywords"]
