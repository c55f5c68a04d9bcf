"""PALR-style profiles: an LLM words the computed profile, cached per (user, history, prompt,
model) so a profile is written once."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from recagent.agent.llm import LLMUnavailable, with_retries
from recagent.config import LLMConfig
from recagent.data.profile import UserProfile
from recagent.prompts.registry import PromptRegistry
from recagent.workspace import atomic_write_text

log = logging.getLogger(__name__)


class ProfileWriter:
    def __init__(
        self,
        model: BaseChatModel,
        model_name: str,
        registry: PromptRegistry,
        cache_dir: Path,
        cfg: LLMConfig,
        domain: str = "movies",
    ) -> None:
        self.model = model
        self.model_name = model_name
        self.registry = registry
        self.cache_dir = cache_dir
        self.cfg = cfg
        self.domain = domain
        self.calls = 0

    def __call__(self, profile: UserProfile) -> str | None:
        facts = profile.model_dump(mode="json", exclude={"text"})
        prompt = self.registry.render(
            "profile_summary", domain=self.domain, profile=json.dumps(facts, indent=1)
        )
        key = hashlib.sha256(
            json.dumps([profile.user_id, facts, prompt.hash, self.model_name]).encode()
        ).hexdigest()[:24]
        path = self.cache_dir / f"{key}.txt"
        if path.is_file():
            return path.read_text(encoding="utf-8")
        messages = [SystemMessage(content=prompt.system or ""), HumanMessage(content=prompt.text)]
        try:
            self.calls += 1
            reply = with_retries(lambda: self.model.invoke(messages), self.cfg)
        except LLMUnavailable as exc:
            log.warning("profile summary falls back to the computed text: %s", exc)
            return None
        text = reply.content if isinstance(reply.content, str) else ""
        text = " ".join(text.split())
        if not text:
            return None
        atomic_write_text(path, text)
        return text


__all__ = ["ProfileWriter"]
