"""The model registry: every model `recagent train <model>` and `recagent eval <model>` know.

This module is torch-free: it names each model and where its `ModelSpec` lives, and imports
that module (and torch) only when a spec is asked for. A spec says how to build the network
from its config, how to make its training data, and how to wrap a trained network as a
`Scorer`; the trainer, checkpoints and commands are the same for every model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from recagent.errors import ConfigError
from recagent.models.train_config import TrainConfig

if TYPE_CHECKING:
    from recagent.models.base import Scorer

# name -> (module holding SPEC, one line on what it is)
MODELS: dict[str, tuple[str, str]] = {
    "sasrec": ("recagent.models.sasrec_scorer", "SASRec: causal self-attention, next item"),
    "hstu": ("recagent.models.hstu", "HSTU: pointwise attention with position/time biases"),
    "bert4rec": ("recagent.models.bert4rec", "BERT4Rec: bidirectional, trained by Cloze"),
    "bst": ("recagent.models.bst", "BST: reranks a retriever's top items (click model)"),
    "lrurec": ("recagent.models.lrurec", "LRURec: linear recurrent units, trained by full softmax"),
}
# how a model's `attended` weights are said after its name ("SASRec ... attending most to X"):
# a recurrent model has no attention, it has a state the history moved
WEIGHED = {"lrurec": "its state moved most by"}
BUILTIN = ("popularity", "fusion")  # no network to train: counts, and a mix of trained models
ALL = (*MODELS, *BUILTIN)

Resolve = Callable[[str], "Scorer"]  # loads another trained model by name (BST's retriever)


@dataclass(frozen=True)
class ModelSpec:
    """How one model is built, trained and scored (see the module docstring)."""

    name: str
    title: str
    config_type: type[BaseModel]
    train_type: type[TrainConfig]
    build: Callable[[int, Any], Any]  # (n_items, config) -> torch module
    scorer: Callable[..., Scorer]  # (module, item_ids, item_counts, config, resolve) -> Scorer
    data: Callable[..., Any]  # (dataset, config, options, resolve) -> training data
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def config(self, preset: str | None = None, **values: Any) -> BaseModel:
        """The model config: a preset's values (if named), then `values` over them."""
        if preset is not None and preset not in self.presets:
            known = ", ".join(self.presets) or "none"
            raise ConfigError(f"{self.name} has no preset {preset!r} (presets: {known})")
        return self.config_type(**{**self.presets.get(preset or "", {}), **values})


def title(name: str) -> str:
    """What people call model `name` (SASRec, HSTU, BERT4Rec, BST, popularity, fusion)."""
    return MODELS[name][1].split(":")[0] if name in MODELS else name


def weighed_words(name: str | None) -> str:
    """How model `name`'s weights over the history are said: "attending most to" for the
    attention models, "its state moved most by" for LRURec."""
    return WEIGHED.get(name or "", "attending most to")


def spec(name: str) -> ModelSpec:
    """The spec of a trainable model; `ConfigError` for an unknown name."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    found: ModelSpec = importlib.import_module(MODELS[name][0]).SPEC
    return found


__all__ = [
    "ALL",
    "BUILTIN",
    "MODELS",
    "WEIGHED",
    "ModelSpec",
    "Resolve",
    "spec",
    "title",
    "weighed_words",
]
