"""PALR-style profiles: an LLM words the computed profile, cached per (user, history, prompt,
model) so a profile is written once. Where the catalog has item knowledge (KAR,
`recagent knowledge build`), what the person's top-rated and recent items are like goes into
the facts, so the model reasons about their preferences from what the items are, not only
their titles and genres."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from recagent.agent.llm import LLMUnavailable, complete
from recagent.config import LLMConfig
from recagent.data.catalog import Catalog
from recagent.data.profile import UserProfile
from recagent.prompts.registry import PromptRegistry
from recagent.workspace import atomic_write_text

log = logging.getLogger(__name__)
KNOWLEDGE_ITEMS = 6


class ProfileWriter:
    def __init__(
        self,
        model: BaseChatModel,
        model_name: str,
        registry: PromptRegistry,
        cache_dir: Path,
        cfg: LLMConfig,
        domain: str = "movies",
        catalog: Catalog | None = None,
    ) -> None:
        self.catalog = catalog
        self.model = model
        self.model_name = model_name
        self.registry = registry
        self.cache_dir = cache_dir
        self.cfg = cfg
        self.domain = domain
        self.calls = 0

    def __call__(self, profile: UserProfile) -> str | None:
        facts = profile.model_dump(mode="json", exclude={"text"})
        known = self._knowledge(profile)
        if known:
            facts["what_their_items_are_like"] = known
        prompt = self.registry.render(
            "profile_summary", domain=self.domain, profile=json.dumps(facts, indent=1)
        )
        key = hashlib.sha256(
            json.dumps([profile.user_id, facts, prompt.hash, self.model_name]).encode()
        ).hexdigest()[:24]
        path = self.cache_dir / f"{key}.txt"
        if path.is_file():
            return path.read_text(encoding="utf-8")
        try:
            self.calls += 1
            text, _ = complete(self.model, prompt, self.cfg)
        except LLMUnavailable as exc:
            log.warning("profile summary falls back to the computed text: %s", exc)
            return None
        text = " ".join(text.split())
        if not text:
            return None
        atomic_write_text(path, text)
        return text

    def _knowledge(self, profile: UserProfile) -> dict[str, str]:
        """title -> knowledge, for the top-rated then recent items that have any."""
        if self.catalog is None:
            return {}
        out: dict[str, str] = {}
        for it in [*profile.top_rated, *profile.recent_items]:
            if it.item_id in self.catalog and len(out) < KNOWLEDGE_ITEMS:
                knowledge = self.catalog[it.item_id].knowledge
                if knowledge:
                    out.setdefault(self.catalog[it.item_id].label, knowledge)
        return out


__all__ = ["ProfileWriter"]
