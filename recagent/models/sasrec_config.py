"""The settings of a SASRec model and of its training, kept free of torch so the command line
can show and validate them without loading it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Loss = Literal["bce", "sampled-softmax", "full-ce"]


class SASRecConfig(BaseModel):
    """The architecture and training objective of a SASRec model (saved in its checkpoint).

    Default loss: `full-ce`, cross-entropy over the whole catalog at every position. On
    ML-100k and ml-latest-small (a few thousand items) it is cheap on a CPU and clearly the
    most accurate of the three (benchmarks/RESULTS.md, "## SASRec", loss comparison): the
    paper's `bce` (one random negative per position) learns slowly and plateaus lower;
    `sampled-softmax` (the HSTU reference's objective) closes most of the gap, and is the
    choice for catalogs too large to score in full at training time.
    """

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(64, ge=4, le=1024, description="Embedding and hidden size.")
    layers: int = Field(2, ge=1, le=12, description="Transformer blocks.")
    heads: int = Field(2, ge=1, le=16, description="Attention heads (must divide dim).")
    ff_mult: int = Field(1, ge=1, le=8, description="Feed-forward width, in multiples of dim.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_len: int = Field(200, ge=2, le=2048, description="Longest history the model reads.")
    loss: Loss = "sampled-softmax"
    negatives: int = Field(
        512, ge=1, le=100_000, description="Sampled negatives per batch (sampled-softmax)."
    )

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> SASRecConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self


class SASRecTrainConfig(BaseModel):
    """How to train (recorded in the checkpoint; does not change the architecture)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(200, ge=1, description="Most epochs to run.")
    batch_size: int = Field(32, ge=1, le=65_536)
    lr: float = Field(3e-3, gt=0, le=1.0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(
        12, ge=1, description="Stop after this many epochs without a better valid NDCG@10."
    )
    seed: int = 0
    device: str = "cpu"
    windows: Literal["last", "all"] = Field(
        "all",
        description="Train on each user's last max_len items only, or on all of a long "
        "history cut into consecutive windows.",
    )
    lr_patience: int | None = Field(
        4,
        ge=1,
        description="Halve the learning rate after this many epochs without a better valid "
        "NDCG@10 (None: constant rate).",
    )
    time_limit_s: float | None = Field(None, gt=0, description="Stop after this much time.")


__all__ = ["Loss", "SASRecConfig", "SASRecTrainConfig"]
