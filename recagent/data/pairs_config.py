"""How item pairs are counted (recagent.data.pairs), kept free of scipy so the command line
can show and validate it without loading the pair builder."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PairsConfig(BaseModel):
    """How item pairs are counted (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(20, ge=1, description="Items within this many positions form a pair.")
    min_rating: float | None = Field(
        None, description="Only interactions rated at least this (None: all)."
    )
    partners: int = Field(200, ge=1, description="Best partners kept per item.")
    damping: float = Field(
        0.3, ge=0, le=1, description="Divide a pair's score by the partner's total ** this."
    )
    drop_quantile: float | None = Field(
        None, gt=0, lt=1, description="Drop pair scores above this quantile (None: keep all)."
    )


__all__ = ["PairsConfig"]
