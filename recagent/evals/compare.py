"""Comparing two runs user by user (prompt A/B tests: same users, same seed), or two
pipelines of one run case by case (the LLM against the same pipeline without it): the mean
difference per metric with a paired t-test, a Wilcoxon signed-rank test and a bootstrap
interval of the difference."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel
from scipy import stats

from recagent.evals.beyond import bootstrap_ci
from recagent.evals.runs import Record, RunConfig
from recagent.evals.summary import values_of


class Delta(BaseModel):
    pipeline: str
    metric: str
    users: int
    a: float
    b: float
    delta: float
    ci: tuple[float, float]
    p_ttest: float
    p_wilcoxon: float


def _values(records: Sequence[Record], protocol: str) -> dict[str, np.ndarray]:
    values = values_of(records, protocol)
    values["latency_ms"] = np.array([r.latency_ms for r in records], dtype=float)
    return values


def _p(test, diff: np.ndarray, *args: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    if not np.any(diff):
        return 1.0
    with np.errstate(all="ignore"):
        p = float(test(*args).pvalue)
    return 1.0 if np.isnan(p) else p


def compare(
    config_a: RunConfig,
    records_a: Sequence[Record],
    config_b: RunConfig,
    records_b: Sequence[Record],
    pair: tuple[str, str] | None = None,
) -> tuple[list[Delta], list[str]]:
    """Paired deltas (b - a) over the users both runs evaluated, per pipeline and metric;
    with `pair` (base, other), pipeline `other` of run b against `base` of run a."""
    warnings = []
    if config_a.protocol != config_b.protocol:
        warnings.append(f"different protocols ({config_a.protocol} vs {config_b.protocol})")
    if config_a.seed != config_b.seed or config_a.split != config_b.split:
        warnings.append("different seed or split: users are not paired the same way")
    if config_a.fingerprints.get("data") != config_b.fingerprints.get("data"):
        warnings.append("the runs used different data")
    deltas: list[Delta] = []
    index_b = {r.key: r for r in records_b if r.failure is None}
    pipelines = sorted({r.pipeline for r in records_a} & {r.pipeline for r in records_b})
    if pair is not None:
        pipelines = [pair[0]]
    for pipeline in pipelines:
        other = pair[1] if pair is not None else pipeline
        pairs = [
            (r, index_b[(other, r.user_idx)])
            for r in records_a
            if r.pipeline == pipeline and r.failure is None and (other, r.user_idx) in index_b
        ]
        if not pairs:
            continue
        va = _values([a for a, _ in pairs], config_a.protocol)
        vb = _values([b for _, b in pairs], config_a.protocol)
        for metric in va:
            both = ~(np.isnan(va[metric]) | np.isnan(vb[metric]))
            if not both.any():
                continue
            x, y = va[metric][both], vb[metric][both]
            diff = y - x
            deltas.append(
                Delta(
                    pipeline=pipeline if pair is None else f"{other} vs {pipeline}",
                    metric=metric,
                    users=int(both.sum()),
                    a=float(x.mean()),
                    b=float(y.mean()),
                    delta=float(diff.mean()),
                    ci=bootstrap_ci(diff, seed=0),
                    p_ttest=_p(stats.ttest_rel, diff, y, x),
                    p_wilcoxon=_p(stats.wilcoxon, diff, diff),
                )
            )
    if not deltas:
        warnings.append("no (pipeline, user) pairs in common")
    return deltas, warnings


__all__ = ["Delta", "compare"]
