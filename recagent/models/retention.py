"""Never lose the better model: the rule every trained model's checkpoint is written under.

A training run (finished, time-capped or interrupted) replaces the checkpoint already saved
for the same data only if its best valid metric is at least as good, or when asked
(`replace=True`, the CLI's `--replace`); otherwise the old checkpoint stays and the run says
which was kept and why, with both numbers. A run that never validated an epoch offers
nothing, so it writes nothing.

`KeepBetter` is the one mechanism: a trainer opens it around its run (it also holds the
model's build lock, so two runs never write one checkpoint), offers each new best epoch with
a function that writes it, and reports `outcome()`. It reads the old checkpoint's score from
the keys every recagent checkpoint carries: `fingerprint` (the data it was trained on) and
`training.best_epoch` / `training.valid[<metric>]`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import torch
from pydantic import BaseModel

from recagent.locks import build_lock
from recagent.progress import Reporter


class ValidScore(BaseModel):
    """How good one checkpoint is on the valid split."""

    metric: str
    value: float
    epoch: int

    def describe(self) -> str:
        return f"valid {self.metric} {self.value:.4f} at epoch {self.epoch}"


class Retention(BaseModel):
    """Which checkpoint a run left in place, and why."""

    kept: Literal["new", "old", "none"]
    reason: str
    new: ValidScore | None = None
    old: ValidScore | None = None


def saved_score(path: Path, fingerprint: str, metric: str) -> ValidScore | None:
    """The score of the checkpoint at `path` if it was trained on this data (`fingerprint`);
    None when there is none, it is unreadable, or it is from other data (nothing to keep)."""
    if not path.is_file():
        return None
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
        training = payload["training"]
        if payload["fingerprint"] != fingerprint:
            return None
        return ValidScore(
            metric=metric,
            value=float(training["valid"][metric]),
            epoch=int(training["best_epoch"]),
        )
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        OSError,
        LookupError,
        TypeError,
        ValueError,
    ):
        return None  # unreadable or damaged: nothing worth keeping


def model_lock(
    path: Path, *, wait: bool = True, reporter: Reporter | None = None
) -> AbstractContextManager[None]:
    """The build lock of the checkpoint at `path` (a lock file beside it)."""
    what = f"model {path.parent.name}/{path.stem}"
    return build_lock(path.with_name(f"{path.name}.lock"), what, wait=wait, reporter=reporter)


class KeepBetter:
    """One training run's guard over the checkpoint at `path` (see the module docstring).

    Use as a context manager around the run: it takes the model's build lock and reads the
    old checkpoint's score on entry."""

    def __init__(
        self,
        path: Path,
        fingerprint: str,
        metric: str,
        *,
        replace: bool = False,
        wait: bool = True,
        reporter: Reporter | None = None,
    ) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.metric = metric
        self.replace = replace
        self.old: ValidScore | None = None
        self.best: ValidScore | None = None
        self.written: ValidScore | None = None
        self._lock = model_lock(path, wait=wait, reporter=reporter)

    def __enter__(self) -> KeepBetter:
        self._lock.__enter__()
        self.old = saved_score(self.path, self.fingerprint, self.metric)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.__exit__(kind, exc, tb)

    def offer(self, score: ValidScore, write: Callable[[Path], None]) -> bool:
        """A new best epoch of this run: `write(path)` it if it may replace the old
        checkpoint; returns whether it was written."""
        self.best = score
        if self.replace or self.old is None or score.value >= self.old.value:
            write(self.path)
            self.written = score
            return True
        return False

    def outcome(self) -> Retention:
        new, old = self.best, self.old
        if new is None:
            kept = "old" if old else "none"
            return Retention(kept=kept, reason="no epoch finished: nothing written", old=old)
        if self.written is None:
            assert old is not None
            return Retention(
                kept="old",
                new=new,
                old=old,
                reason=(
                    f"kept the existing model ({old.describe()}): this run's best "
                    f"({new.describe()}) is worse; --replace keeps this run's instead"
                ),
            )
        if old is None:
            return Retention(kept="new", new=new, reason=f"saved this run's {new.describe()}")
        why = "asked to replace it" if new.value < old.value else "at least as good"
        return Retention(
            kept="new",
            new=new,
            old=old,
            reason=(
                f"replaced the existing model ({old.describe()}) with this run's "
                f"({new.describe()}): {why}"
            ),
        )


__all__ = ["KeepBetter", "Retention", "ValidScore", "model_lock", "saved_score"]
