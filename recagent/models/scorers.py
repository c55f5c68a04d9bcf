"""Any scorer by name, and the workspace's default one.

`load_named` gives `popularity` (counts), `fusion` (its members, as fitted on valid) or a
trained model from its checkpoint. `load_default` gives the workspace's best model on valid
(`leaderboard.best_model`), the one the agent, the tools, `recommend` and the eval pipelines
use unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError, ConfigError
from recagent.models import leaderboard
from recagent.models.base import Scorer
from recagent.models.registry import ALL, MODELS
from recagent.workspace import Workspace


def load_named(
    workspace: Workspace,
    dataset: Dataset,
    name: str,
    device: str = "cpu",
    train_only: bool = True,
) -> Scorer:
    """The scorer `name` for `dataset` (`ArtifactError` if it is not trained; popularity
    counts the training split only unless `train_only=False`)."""
    if name not in ALL:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(ALL)}")
    if name == "popularity":
        from recagent.models.popularity import PopularityScorer

        return PopularityScorer.from_dataset(dataset, train_only=train_only)
    from recagent.models.checkpoint import load_scorer

    if name == "fusion":
        from recagent.models.fusion import FusionScorer, read_fusion

        config = read_fusion(workspace, dataset.name)
        members = [load_scorer(workspace, dataset, m, device) for m in config.members]
        return FusionScorer(members, config)
    return load_scorer(workspace, dataset, name, device)


def default_name(workspace: Workspace, dataset: Dataset) -> str | None:
    """The workspace's best model on valid for `dataset`, if any has been measured."""
    return leaderboard.best_model(workspace, dataset.name, dataset.fingerprint)


def load_default(workspace: Workspace, dataset: Dataset, device: str = "cpu") -> Scorer:
    """The best model on valid, loaded; `ArtifactError` if none was measured yet."""
    name = default_name(workspace, dataset)
    if name is None:
        raise ArtifactError(f"no model of dataset {dataset.name!r} has been measured on valid")
    return load_named(workspace, dataset, name, device)


def available(workspace: Workspace, dataset: Dataset) -> list[str]:
    """The models that can score `dataset` now: each trained one, fusion once fitted, and
    popularity (always)."""
    folder = workspace.models_dir(dataset.name)
    trained = [m for m in MODELS if (folder / f"{m}.pt").is_file()]
    fitted = ["fusion"] if (folder / leaderboard.FUSION).is_file() else []
    return [*trained, *fitted, "popularity"]


class ScorerShelf:
    """Any scorer of one dataset by name, loaded on first use and kept (what the tools use
    when asked for a model other than the default). `load` replaces `load_named` for a
    caller that builds some models its own way (the app's services build SASRec)."""

    def __init__(
        self,
        workspace: Workspace,
        dataset: Dataset,
        loaded: dict[str, Scorer] | None = None,
        device: str = "cpu",
        train_only: bool = True,
        load: Callable[[str], Scorer] | None = None,
    ) -> None:
        self.workspace = workspace
        self.dataset = dataset
        self.device = device
        self.train_only = train_only
        self._load = load
        self._loaded = dict(loaded or {})

    def get(self, name: str) -> Scorer:
        if name not in self._loaded:
            if self._load is not None:
                self._loaded[name] = self._load(name)
            else:
                self._loaded[name] = load_named(
                    self.workspace, self.dataset, name, self.device, self.train_only
                )
        return self._loaded[name]

    def available(self) -> list[str]:
        """The models this shelf can give now (see `available`)."""
        return available(self.workspace, self.dataset)


__all__ = ["ScorerShelf", "available", "default_name", "load_default", "load_named"]
