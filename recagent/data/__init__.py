"""Datasets: MovieLens and generic loaders, the catalog, interactions and the shared split."""

from recagent.data.catalog import Catalog, Item
from recagent.data.dataset import Dataset
from recagent.data.interactions import Interactions
from recagent.data.split import EvalCase, LeaveOneOut

__all__ = ["Catalog", "Dataset", "EvalCase", "Interactions", "Item", "LeaveOneOut"]
