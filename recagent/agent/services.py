"""Everything a session needs, loaded from the workspace and built on first use: the dataset,
the scorer (the workspace's best model on valid, else SASRec) and the vector index; then the
session itself (offline or with an LLM)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import recagent.tools  # noqa: F401  (registers every tool)
from recagent.agent.graph import ToolCallingAgent
from recagent.agent.llm import make_chat_model, resolve_llm
from recagent.agent.profile_writer import ProfileWriter
from recagent.agent.runlog import RunLog
from recagent.agent.session import ChatSession
from recagent.config import Settings
from recagent.data.dataset import Dataset
from recagent.data.download import DownloadError
from recagent.data.pairs import ItemPairs, PairsConfig
from recagent.data.popularity import popularity
from recagent.data.prepare import LOADERS, PrepareConfig, prepare
from recagent.errors import ArtifactError
from recagent.models.base import Scorer
from recagent.progress import Reporter
from recagent.prompts.registry import PromptRegistry
from recagent.workspace import Workspace

log = logging.getLogger(__name__)
LOCAL_COPIES = (Path("data"), Path("../shared/data"))  # where extracted copies often live


@dataclass
class Services:
    dataset: Dataset
    scorer: Any = None
    scorers: Any = None  # ScorerShelf: the other models by name, for score_candidates(model=)
    index: Any = None
    pairs: Any = None  # ItemPairs: items people consume together
    popularity: Any = None  # popularity lately per item_idx
    notes: list[str] = field(default_factory=list)


def ensure_dataset(
    workspace: Workspace, settings: Settings, name: str, reporter: Reporter, notes: list[str]
) -> Dataset:
    """The prepared dataset; a missing MovieLens dataset is downloaded, or prepared from a
    local extracted copy when offline."""
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


def _single_thread_inference() -> None:
    """Score one history at a time on one thread: ~5 ms instead of hundreds when torch's
    worker threads compete with other processes for the cores (measured on 2 cores)."""
    import torch

    torch.set_num_threads(1)


def load_services(
    workspace: Workspace,
    settings: Settings,
    name: str,
    reporter: Reporter,
    build_missing: bool = True,
) -> Services:
    """Dataset, scorer and item index; missing or stale ones are built first (with progress)
    when `build_missing`, else the session runs without them and says so. The scorer is the
    workspace's best model on valid (`recagent models`), else SASRec (trained if missing)."""
    from recagent.index.store import open_index
    from recagent.models.checkpoint import load_sasrec_scorer
    from recagent.models.popularity import PopularityScorer
    from recagent.models.scorers import ScorerShelf, default_name, load_named
    from recagent.models.train import SASRecTrainConfig, ensure_sasrec_scorer

    notes: list[str] = []
    dataset = ensure_dataset(workspace, settings, name, reporter, notes)
    scorer: Scorer | None = None
    best = default_name(workspace, dataset)
    if best is not None:
        try:
            scorer = load_named(workspace, dataset, best, train_only=False)
        except ArtifactError as exc:
            notes.append(f"{exc}; using SASRec instead of {best}")
    if scorer is None:
        try:
            if build_missing:
                options = SASRecTrainConfig(time_limit_s=settings.agent.first_run_train_s)
                scorer = ensure_sasrec_scorer(workspace, dataset, reporter, None, options, notes)
            else:
                scorer = load_sasrec_scorer(workspace, dataset)
        except ArtifactError as exc:
            notes.append(f"{exc}; ranking by popularity instead")
            scorer = PopularityScorer.from_dataset(dataset, train_only=False)
    shelf = ScorerShelf(workspace, dataset, {scorer.name: scorer}, train_only=False)
    _single_thread_inference()
    try:
        index = open_index(
            workspace,
            dataset,
            settings.index,
            reporter=reporter,
            build_if_missing=build_missing,
            rebuild_if_stale=build_missing,
        )
    except ArtifactError as exc:
        notes.append(f"{exc}; vector recall is off")
        index = None
    pairs = ItemPairs.load_or_build(workspace, dataset, PairsConfig(), train_only=False)
    recent = popularity(dataset, half_life_days=settings.agent.popularity_half_life_days)
    return Services(
        dataset=dataset,
        scorer=scorer,
        scorers=shelf,
        index=index,
        pairs=pairs,
        popularity=recent,
        notes=notes,
    )


def build_session(
    services: Services, settings: Settings, workspace: Workspace, llm_spec: str | None
) -> ChatSession:
    registry = PromptRegistry(workspace.prompts_dir)
    choice = resolve_llm(llm_spec, settings.llm)
    agent = writer = None
    if choice.mode == "openai":
        model = make_chat_model(choice, settings.llm)
        agent = ToolCallingAgent(model, registry, settings.llm, settings.agent)
        writer = ProfileWriter(
            model,
            choice.model or "",
            registry,
            workspace.root / "cache" / "profiles",
            settings.llm,
            settings.agent.domain,
        )
    session = ChatSession(
        services.dataset,
        registry,
        settings.agent,
        scorer=services.scorer,
        index=services.index,
        agent=agent,
        model_name=choice.model,
        runlog=RunLog(workspace.log_db),
        profile_writer=writer,
        pairs=services.pairs,
        popularity=services.popularity,
    )
    session.ctx.scorers = services.scorers
    return session


__all__ = ["Services", "build_session", "ensure_dataset", "load_services"]
