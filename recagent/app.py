"""The one place that builds a dataset's services (data, scorers, index, the collaborative
signals) and the sessions over them, for `chat`, `recommend`, `serve` and `eval`.

The scorer everything uses by default is the workspace's best model on valid (`recagent
models`), else SASRec; any other trained model is at hand by name (`named`, `scorers`).

Two policies, one builder:

- for people (`chat`, `recommend`, `serve`): everything the prepared data holds counts
  (popularity and item pairs from every interaction), a missing SASRec is trained within the
  first-run budget and a missing or stale index is built (with progress), and whatever
  still cannot be had is replaced (popularity ranking, no vector recall) and said in
  `notes`;
- for evaluation (`strict`): a missing SASRec is trained in full and nothing is silently
  replaced (a pipeline that needs a model gets that model or fails), and with `train_only`
  only the training split teaches anything (leave-one-out protocols would otherwise see
  the held-out items).

Pieces are built on first use (`cached_property`), so an evaluation of `popularity` trains
nothing; `warm()` builds them all up front, as chat and serve do before saying they are
ready.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from recagent.config import Settings
from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.progress import Reporter, SilentReporter
from recagent.prompts.registry import PromptRegistry
from recagent.workspace import Workspace

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.language_models import BaseChatModel

    from recagent.agent.runlog import RunLog
    from recagent.agent.session import ChatSession
    from recagent.data.pairs import ItemPairs
    from recagent.index.item_index import ItemIndex
    from recagent.models.base import Scorer
    from recagent.models.popularity import PopularityScorer
    from recagent.models.ratings import RatingModel
    from recagent.models.scorers import ScorerShelf

log = logging.getLogger(__name__)
LOCAL_COPIES = (Path("data"), Path("../shared/data"))  # where extracted copies often live


def ensure_dataset(
    workspace: Workspace, settings: Settings, name: str, reporter: Reporter, notes: list[str]
) -> Dataset:
    """The prepared dataset; a missing MovieLens dataset is downloaded, or prepared from a
    local extracted copy when offline."""
    from recagent.data.download import DownloadError
    from recagent.data.prepare import LOADERS, PrepareConfig, prepare

    try:
        return Dataset.load(workspace, name)
    except ArtifactError:
        if name not in LOADERS:
            raise
    try:
        return prepare(PrepareConfig(dataset=name), workspace, settings.download_mirror, reporter)
    except DownloadError as exc:
        for base in LOCAL_COPIES:
            folder = base / name
            if folder.is_dir():
                reason = str(exc).split("; ")[0]  # what failed, without the --source hint
                log.warning("%s: preparing %s from the local copy %s", reason, name, folder)
                notes.append(f"offline: prepared {name} from the local copy {folder}")
                return prepare(
                    PrepareConfig(dataset=name, source=folder), workspace, None, reporter
                )
        raise exc


def single_thread_inference() -> None:
    """Score one history at a time on one thread: ~5 ms instead of hundreds when torch's
    worker threads compete with other processes for the cores (measured on 2 cores)."""
    import torch

    torch.set_num_threads(1)


@dataclass(frozen=True)
class AgentLLM:
    """The chat model a session's agent calls, and what it is called in answers."""

    model: BaseChatModel  # evaluation: cached and rate-limited
    name: str | None  # None: whatever model the server serves
    profile_cache: Path  # where the model's worded profiles are cached


@dataclass
class Services:
    """A dataset and everything the agent's tools call, built once and shared by sessions."""

    workspace: Workspace
    settings: Settings
    dataset: Dataset
    reporter: Reporter = field(default_factory=SilentReporter)
    build_missing: bool = True  # train / index what is missing (else fall back and say so)
    strict: bool = False  # evaluation: build what is missing in full, never fall back
    train_only: bool = False  # learn only from the training split (leave-one-out protocols)
    notes: list[str] = field(default_factory=list)

    @cached_property
    def registry(self) -> PromptRegistry:
        return PromptRegistry(self.workspace.prompts_dir)

    @cached_property
    def default_name(self) -> str:
        """The model the agent, its tools and the eval pipelines score with: the workspace's
        best on valid NDCG@10 (`recagent models`), else SASRec."""
        from recagent.models.scorers import default_name

        return default_name(self.workspace, self.dataset) or "sasrec"

    @cached_property
    def scorer(self) -> Scorer:
        """The default model (`default_name`); for people, SASRec when that model cannot be
        loaded, and popularity when SASRec cannot be had either (each said in `notes`)."""
        name = self.default_name
        if name != "sasrec":
            try:
                return self.named(name)
            except ArtifactError as exc:
                if self.strict:
                    raise
                self.notes.append(f"{exc}; using SASRec instead of {name}")
        return self.sasrec

    @cached_property
    def sasrec(self) -> Scorer:
        """SASRec for this dataset (trained if missing: within the first-run budget for
        people, in full for evaluation); for people, popularity when it cannot be had
        (said)."""
        from recagent.models.checkpoint import load_sasrec_scorer
        from recagent.models.train import SASRecTrainConfig, ensure_sasrec_scorer

        try:
            if self.strict:
                scorer = ensure_sasrec_scorer(self.workspace, self.dataset, self.reporter)
            elif self.build_missing:
                options = SASRecTrainConfig(time_limit_s=self.settings.agent.first_run_train_s)
                scorer = ensure_sasrec_scorer(
                    self.workspace, self.dataset, self.reporter, None, options, self.notes
                )
            else:
                scorer = load_sasrec_scorer(self.workspace, self.dataset)
        except ArtifactError as exc:
            if self.strict:
                raise
            self.notes.append(f"{exc}; ranking by popularity instead")
            return self.popularity_scorer
        single_thread_inference()
        return scorer

    def named(self, name: str) -> Scorer:
        """Model `name` of this dataset, loaded once: SASRec as `sasrec` builds it, popularity
        from the split this policy learns from, any other from its checkpoint
        (`ArtifactError` when it is not trained, `ConfigError` when no model has that
        name)."""
        return self.scorers.get(name)

    @cached_property
    def scorers(self) -> ScorerShelf:
        """Every model of this dataset by name, loaded on first use (ScorerShelf): what
        `score_candidates(model=...)` picks from."""
        from recagent.models.scorers import ScorerShelf

        return ScorerShelf(
            self.workspace, self.dataset, train_only=self.train_only, load=self._load
        )

    def _load(self, name: str) -> Scorer:
        from recagent.models.scorers import load_named

        if name == "popularity":
            return self.popularity_scorer
        if name == "sasrec":
            if self.sasrec is self.popularity_scorer:  # SASRec could not be had (said)
                raise ArtifactError(f"no SASRec model of dataset {self.dataset.name!r}")
            return self.sasrec
        scorer = load_named(self.workspace, self.dataset, name, train_only=self.train_only)
        single_thread_inference()
        return scorer

    @property
    def scorer_title(self) -> str:
        """What ranks candidates, as people call it (SASRec, HSTU, ..., popularity)."""
        from recagent.models.registry import title

        return title(self.scorer.name)

    @cached_property
    def popularity_scorer(self) -> PopularityScorer:
        from recagent.models.popularity import PopularityScorer

        return PopularityScorer.from_dataset(self.dataset, train_only=self.train_only)

    @cached_property
    def index(self) -> ItemIndex | None:
        """The vector index; for people, None (no vector recall) when it cannot be had."""
        from recagent.index.store import open_index

        try:
            return open_index(
                self.workspace,
                self.dataset,
                self.settings.index,
                reporter=self.reporter,
                build_if_missing=self.build_missing or self.strict,
                rebuild_if_stale=self.build_missing and not self.strict,
            )
        except ArtifactError as exc:
            if self.strict:
                raise
            self.notes.append(f"{exc}; vector recall is off")
            return None

    @cached_property
    def similar_index(self) -> ItemIndex | None:
        """The space "more like this" searches (`[index] similar_space`,
        recagent.represent.space): by default the blend of text and co-watch similarity at
        the weight chosen on valid, when an item encoder is trained and beat the text vectors
        there; None when that is the text index."""
        if self.index is None or self.settings.index.similar_space == "text":
            return None
        from recagent.represent.space import open_similar_index

        try:
            return open_similar_index(
                self.workspace,
                self.dataset,
                self.settings.index,
                embedder=self.index.embedder,
                reporter=self.reporter,
            )
        except ArtifactError as exc:
            if self.strict:
                raise
            self.notes.append(f"{exc}; similar items come from the text space")
            return None

    @cached_property
    def pairs(self) -> ItemPairs:
        """Items people consume together (ItemPairs)."""
        from recagent.data.pairs import ItemPairs, PairsConfig

        return ItemPairs.load_or_build(
            self.workspace, self.dataset, PairsConfig(), train_only=self.train_only
        )

    @cached_property
    def popularity(self) -> np.ndarray:
        """What the agent calls popular lately (recency-weighted counts per item_idx)."""
        from recagent.data.popularity import popularity

        return popularity(
            self.dataset,
            train_only=self.train_only,
            half_life_days=self.settings.agent.popularity_half_life_days,
        )

    def warm(self) -> Services:
        """Build (or load) every piece now, with progress, instead of on first use."""
        pieces = ("scorer", "scorers", "index", "similar_index", "pairs", "popularity", "registry")
        for piece in pieces:
            getattr(self, piece)
        return self

    def session(
        self,
        model: BaseChatModel | None = None,
        model_name: str | None = None,
        *,
        profile_cache: Path | None = None,
        runlog: RunLog | None = None,
    ) -> ChatSession:
        """A new conversation over these services: offline (the rule-based planner) or with
        the LangChain chat `model` driving the agent; `profile_cache`: where the model's
        worded profiles are cached (None: profiles are worded by the rules)."""
        from recagent.agent.llm_agent import ToolCallingAgent
        from recagent.agent.profile_writer import ProfileWriter
        from recagent.agent.session import ChatSession
        from recagent.agent.tool_loop import ToolLoop

        agent = writer = loop = None
        if model is not None:
            llm_cfg, agent_cfg = self.settings.llm, self.settings.agent
            if agent_cfg.mode == "loop":
                loop = ToolLoop(model, self.registry, llm_cfg, agent_cfg)
            else:
                agent = ToolCallingAgent(model, self.registry, llm_cfg, agent_cfg)
            if profile_cache is not None:
                writer = ProfileWriter(
                    model,
                    model_name or "",
                    self.registry,
                    profile_cache,
                    self.settings.llm,
                    self.settings.agent.domain,
                    self.dataset.catalog,
                )
        return ChatSession(
            self.dataset,
            self.registry,
            self.settings.agent,
            scorer=self.scorer,
            index=self.index,
            agent=agent,
            loop=loop,
            model_name=model_name if model is not None else None,
            runlog=runlog,
            profile_writer=writer,
            pairs=self.pairs,
            similar_index=self.similar_index,
            popularity=self.popularity,
            scorers=self.scorers,
            rating_model=lambda: self.rating_model,
        )

    @cached_property
    def rating_model(self) -> RatingModel | None:
        """The best rating predictor on valid, fitted on the training split (`judge`)."""
        from recagent.models.ratings import choose_on_valid

        return choose_on_valid(self.workspace, self.dataset)


def open_services(
    workspace: Workspace,
    settings: Settings,
    name: str,
    reporter: Reporter | None = None,
    *,
    build_missing: bool = True,
    strict: bool = False,
    train_only: bool = False,
) -> Services:
    """The services of dataset `name` (prepared first when it is a missing MovieLens one);
    the models are built on first use, or all at once with `.warm()`."""
    reporter = reporter or SilentReporter()
    notes: list[str] = []
    dataset = ensure_dataset(workspace, settings, name, reporter, notes)
    return Services(
        workspace,
        settings,
        dataset,
        reporter,
        build_missing=build_missing,
        strict=strict,
        train_only=train_only,
        notes=notes,
    )


def eval_services(
    workspace: Workspace,
    settings: Settings,
    dataset: Dataset,
    reporter: Reporter | None = None,
    train_only: bool = True,
) -> Services:
    """What an evaluation runs against: strict (a missing model is built in full, never
    replaced) and, for leave-one-out protocols, learning from the training split only."""
    return Services(
        workspace,
        settings,
        dataset,
        reporter or SilentReporter(),
        build_missing=False,
        strict=True,
        train_only=train_only,
    )


def load_services(
    workspace: Workspace,
    settings: Settings,
    name: str,
    reporter: Reporter | None = None,
    build_missing: bool = True,
) -> Services:
    """Everything a conversation needs, built now: dataset, default scorer and item index;
    missing or stale ones are built first (with progress) when `build_missing`, else the
    session runs without them and says so (`notes`)."""
    return open_services(workspace, settings, name, reporter, build_missing=build_missing).warm()


def resolve_agent_llm(
    settings: Settings, workspace: Workspace, spec: str | None
) -> AgentLLM | None:
    """The LLM that `--llm SPEC` (or the settings) choose; None for the offline planner."""
    from recagent.agent.llm import make_chat_model, resolve_llm

    choice = resolve_llm(spec, settings.llm)
    if choice.mode != "openai":
        return None
    return AgentLLM(
        model=make_chat_model(choice, settings.llm),
        name=choice.model,
        profile_cache=workspace.cache_dir / "profiles",
    )


def build_session(
    services: Services, settings: Settings, workspace: Workspace, llm_spec: str | None
) -> ChatSession:
    """A logged conversation for a person (chat, recommend): offline or with the LLM that
    `llm_spec` chooses."""
    from recagent.agent.runlog import RunLog

    llm = resolve_agent_llm(settings, workspace, llm_spec)
    if llm is None:
        return services.session(runlog=RunLog(workspace.log_db))
    return services.session(
        llm.model, llm.name, profile_cache=llm.profile_cache, runlog=RunLog(workspace.log_db)
    )


__all__ = [
    "AgentLLM",
    "Services",
    "build_session",
    "ensure_dataset",
    "eval_services",
    "load_services",
    "open_services",
    "resolve_agent_llm",
    "single_thread_inference",
]
