"""What an evaluation run needs, loaded once and shared by its pipelines: the dataset, the
scorers, the index, and (for LLM pipelines) a cached, rate-limited chat model."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recagent.agent.llm import make_chat_model, resolve_llm
from recagent.agent.session import ChatSession
from recagent.config import Settings
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.evals.cache import CachedChatModel, LLMCache, RateLimiter
from recagent.evals.pipelines import (
    LLM_PIPELINES,
    MODEL_PIPELINES,
    PIPELINES,
    HybridRecommender,
    LLMRerankRecommender,
    ScorerRecommender,
    SessionRecommender,
    VectorRecommender,
)
from recagent.evals.recommender import Recommender
from recagent.evals.rerank import LLMRanker, PALRRanker
from recagent.evals.runs import RunConfig
from recagent.index.chroma import catalog_fingerprint
from recagent.index.embedders import Embedder, make_embedder
from recagent.manifest import file_sha256
from recagent.models import leaderboard
from recagent.models.ratings import Training, training
from recagent.prompts.registry import PromptRegistry
from recagent.workspace import Workspace

if TYPE_CHECKING:
    from recagent.app import Services


@dataclass
class EvalEnv:
    """An evaluation's services (built by `recagent.app.eval_services`: strict, and trained
    on the training split only for leave-one-out protocols) and, for the LLM pipelines, a
    cached, rate-limited chat model."""

    services: Services
    llm_spec: str | None = None
    use_cache: bool = True
    llm_rpm: float = 0.0

    @property
    def workspace(self) -> Workspace:
        return self.services.workspace

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def dataset(self) -> Dataset:
        return self.services.dataset

    @property
    def registry(self) -> PromptRegistry:
        return self.services.registry

    @property
    def popularity(self) -> Any:
        return self.services.popularity_scorer

    @property
    def sasrec(self) -> Any:
        return self.services.sasrec

    def scorer(self, name: str) -> Any:
        """A model by name (SASRec is trained if missing; the others must be trained)."""
        return self.services.named(name)

    @property
    def default_name(self) -> str:
        """The workspace's best model on valid (`recagent models`), else sasrec."""
        return self.services.default_name

    @property
    def default_scorer(self) -> Any:
        """What the agent, `hybrid` and `llm-rerank` score with."""
        return self.services.scorer

    @property
    def index(self) -> Any:
        return self.services.index

    @property
    def similar_index(self) -> Any:
        """What history similarity searches (the `similar_items` tool's space)."""
        return self.services.similar_index or self.services.index

    @cached_property
    def llm(self) -> CachedChatModel:
        choice = resolve_llm(self.llm_spec, self.settings.llm)
        if choice.mode != "openai":
            raise ConfigError(
                "the llm pipelines need an LLM: set OPENAI_BASE_URL (and OPENAI_API_KEY) or "
                "pass --llm openai:<model>"
            )
        cache = LLMCache(self.workspace.cache_dir / "llm.sqlite") if self.use_cache else None
        return CachedChatModel(
            inner=make_chat_model(choice, self.settings.llm),
            model_name=choice.model or "",
            store=cache,
            limiter=RateLimiter(self.llm_rpm, self.settings.llm.concurrency),
        )

    @cached_property
    def text_embedder(self) -> Embedder:
        """The configured embedder (the tags protocol's spaces embed with it)."""
        return make_embedder(self.settings.index)

    @cached_property
    def rating_training(self) -> Training:
        """The training ratings the ratings protocol's predictors learn from."""
        return training(self.dataset)

    def session(self, with_llm: bool) -> ChatSession:
        if with_llm:
            return self.services.session(self.llm, self.llm.model_name)
        return self.services.session()

    def fingerprints(self, pipelines: list[str]) -> dict[str, str]:
        out = {"data": self.dataset.fingerprint}
        agents = ("hybrid", "planner", "llm", "llm-rerank", "palr")
        used = {p for p in pipelines if p in MODEL_PIPELINES and p != "popularity"}
        if any(p in pipelines for p in agents):
            used.add(self.default_name)
        for name in sorted(used):
            self.scorer(name)  # trains SASRec if missing, so its file exists
            out[name] = leaderboard.identity(self.workspace, self.dataset.name, name) or "none"
        if any(p in pipelines for p in ("vector", "hybrid", "planner", "llm", "llm-rerank")):
            out["index"] = str(getattr(self.index, "meta", ""))[:200]
            if self.services.similar_index is not None:
                out["similar_index"] = str(self.services.similar_index.meta.embedder)
        if any(p in pipelines for p in LLM_PIPELINES):
            out["llm"] = self.llm.model_name
        return out

    def stamp(self, config: RunConfig) -> None:
        """Record on a new run what it runs against: data, model, index and case-file
        fingerprints, and the hash of every prompt."""
        config.fingerprints = self.fingerprints(config.pipelines)
        if config.protocol == "tags":  # what the spaces embed: the items and their knowledge
            config.fingerprints["catalog"] = catalog_fingerprint(self.dataset.catalog)
            config.fingerprints["embedder"] = self.text_embedder.name
        if config.protocol == "ratings" and any(p.startswith("llm-") for p in config.pipelines):
            config.fingerprints["llm"] = self.llm.model_name
        if config.cases:
            config.fingerprints["cases"] = file_sha256(Path(config.cases))
        config.prompt_hashes = self.registry.hashes()

    def changes(self, config: RunConfig) -> list[str]:
        """What differs now from what `config`'s run was made against (resume refuses)."""
        now = RunConfig.model_validate(config.model_dump())
        self.stamp(now)
        changed = [
            what
            for what, value in config.fingerprints.items()
            if what != "index" and now.fingerprints.get(what) != value
        ]
        prompts = [
            name
            for name, value in config.prompt_hashes.items()
            if now.prompt_hashes.get(name) != value
        ]
        return changed + [f"prompt {name}" for name in prompts]

    def pipeline(self, name: str) -> Recommender:
        if name in MODEL_PIPELINES:
            return ScorerRecommender(name, self.scorer(name))
        if name == "vector":
            return VectorRecommender(self.similar_index)
        if name == "hybrid":
            return HybridRecommender(self.similar_index, self.default_scorer)
        if name == "planner":
            return SessionRecommender("planner", lambda: self.session(with_llm=False))
        if name == "llm":
            return SessionRecommender("llm", lambda: self.session(with_llm=True))
        if name == "llm-titles":
            from recagent.evals.titles import TitlesRecommender

            return TitlesRecommender(
                self.llm, self.dataset, self.registry, self.settings.llm, self.settings.agent.domain
            )
        if name == "llm-rerank":
            ranker = LLMRanker(
                self.llm,
                self.dataset.catalog,
                self.registry,
                self.settings.llm,
                self.settings.agent.domain,
            )
            recall = HybridRecommender(self.similar_index, self.default_scorer)
            return LLMRerankRecommender(ranker, recall)
        if name == "palr":
            palr = PALRRanker(
                self.llm,
                self.dataset.catalog,
                self.registry,
                self.settings.llm,
                self.settings.agent.domain,
            )
            retriever = ScorerRecommender(self.default_name, self.default_scorer)
            return LLMRerankRecommender(palr, retriever, name="palr")
        raise ConfigError(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)}")


__all__ = ["EvalEnv"]
