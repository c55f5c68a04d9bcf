"""Loading what a chat needs: the fallbacks when a model or the index is missing."""

from __future__ import annotations

from recagent.app import load_services
from recagent.config import load_settings
from recagent.data.dataset import Dataset
from recagent.models.popularity import PopularityScorer
from recagent.progress import SilentReporter
from recagent.workspace import Workspace


def test_without_building_a_missing_model_and_index_fall_back_and_say_so(
    recall_dataset: Dataset, workspace: Workspace
) -> None:
    settings = load_settings(home=workspace.root)
    services = load_services(workspace, settings, "ml-100k", SilentReporter(), build_missing=False)
    assert isinstance(services.scorer, PopularityScorer)
    assert services.index is None
    notes = " ".join(services.notes)
    assert "ranking by popularity" in notes and "vector recall is off" in notes
    # every interaction counts when recommending to real users (not only the training part)
    expected = PopularityScorer(recall_dataset.catalog.item_ids, recall_dataset.popularity)
    assert services.scorer.recommend([], 3) == expected.recommend([], 3)
    trained_only = PopularityScorer.from_dataset(recall_dataset)
    assert services.scorer.scores.tolist() != trained_only.scores.tolist()
