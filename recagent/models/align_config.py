"""The settings of text alignment (CTRL-lite), kept free of torch so the command line can
validate them without loading it. Recorded in the checkpoint with the training options."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AlignConfig(BaseModel):
    """Align the item embedding table with the items' text before training (stage 1), then
    train as usual (stage 2), then fit the text -> item-embedding projection on the trained
    table and keep it, so an item without interactions is embedded from its text.

    `temperature` is stage 1's InfoNCE temperature. Choosing it takes whole trainings: on
    ML-100k (seed 0, `benchmarks/ctrl_bench.py`, valid split only) valid NDCG@10 was 0.1047
    at 0.05, 0.0984 at 0.1 and 0.1022 at 0.2 (within noise of each other; 0.05 kept). The final
    projection's temperature is picked from `temperatures` by how well it finds held-out
    warm items from their text (training data only; cheap, and it is what cold items need).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Align the item table with the item text.")
    temperature: float = Field(0.05, gt=0, le=1.0, description="Stage 1 InfoNCE temperature.")
    steps: int = Field(300, ge=0, le=100_000, description="Stage 1 steps.")
    temperatures: list[float] = Field(
        default_factory=lambda: [0.05, 0.1, 0.2],
        min_length=1,
        description="Temperatures tried for the final projection (best on held-out items).",
    )
    projection_steps: int = Field(300, ge=1, le=100_000, description="Steps per projection fit.")
    batch_size: int = Field(256, ge=2, le=65_536, description="Items per contrastive batch.")
    lr: float = Field(3e-3, gt=0, le=1.0)
    holdout: float = Field(
        0.1, gt=0, lt=1, description="Share of warm items held out to pick the temperature."
    )
    shuffle_text: bool = Field(
        False,
        description="Control: pair every item with another item's text (seeded), to tell the "
        "text's information from the regularisation of aligning at all.",
    )
    shuffle_seed: int = 0

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        if any(not 0 < t <= 1 for t in values):
            raise ValueError("temperatures must be in (0, 1]")
        return values


__all__ = ["AlignConfig"]
