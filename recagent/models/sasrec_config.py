"""The settings of a SASRec model and of its training, kept free of torch so the command line
can show and validate them without loading it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recagent.models.train_config import TrainConfig

Loss = Literal["bce", "sampled-softmax", "full-ce"]


class SASRecConfig(BaseModel):
    """The architecture and training objective of a SASRec model (saved in its checkpoint).

    Default loss: `sampled-softmax` (512 uniformly sampled negatives shared by the batch, as
    in the HSTU reference). Measured on the valid split (benchmarks/RESULTS.md, "## SASRec",
    loss runs; seed 0, one thread), valid NDCG@10 and CPU seconds to the best epoch:

    - ml-latest-small, 5-core: sampled-softmax 0.079 in 187 s; full-ce 0.074 in 359 s (10 s
      an epoch against 3); bce 0.047.
    - ML-100k: full-ce 0.107 in 71 s; sampled-softmax 0.101 in 139 s; bce 0.098.

    The two softmax losses are within one standard error of each other on these few hundred
    users, and each wins on one dataset; the paper's `bce` (one negative per position) is
    clearly worst on the larger catalog. `sampled-softmax` is the default because it keeps
    training under three minutes on both (full-ce's cost grows with the catalog at every
    position) and scales to catalogs too large to score in full. The other defaults (width
    64, feed-forward 1x, dropout 0.2, batch 32, lr 3e-3 halved on valid plateaus, all of a long
    history in windows) stayed because the variants in the same table (dropout 0.5, width 128,
    2,048 negatives, last window only, weight decay 0.1) did no better on valid.
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
    output_bias: bool = Field(False, description="A learned per-item output bias (LRURec).")

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> SASRecConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self


class SASRecTrainConfig(TrainConfig):
    """How to train SASRec (recorded in the checkpoint; does not change the architecture).
    The defaults are `TrainConfig`'s."""


__all__ = ["Loss", "SASRecConfig", "SASRecTrainConfig"]
