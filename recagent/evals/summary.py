"""From per-user records to the numbers a report shows: accuracy with 95% bootstrap
intervals, beyond-accuracy measures, cost, LLM-ranker error rates, conversation outcomes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recagent.data.dataset import Dataset
from recagent.evals import beyond
from recagent.evals.ratings import POSITIVE
from recagent.evals.runs import Record, RunConfig
from recagent.metrics import ndcg_of_list, per_user, recall, roc_auc

KS = {
    "full-rank": (10, 20, 50),
    "candidates": (1, 5, 10, 20),
    "conversation": (1, 5, 10),
    "dialogues": (1, 5, 10, 20, 50),
    "requests": (),
    "tags": (10, 50),
    "ratings": (),
}
HEADLINE = {
    "full-rank": "NDCG@10",
    "candidates": "NDCG@10",
    "conversation": "hit_rate",
    "dialogues": "Recall@10",
    "requests": "outcome_checks",
    "tags": "NDCG@10",
    "ratings": "MAE",
}
PRICES = Path(__file__).with_name("prices.yaml")


def load_prices(user_file: Path | None = None) -> dict[str, dict[str, float]]:
    prices = yaml.safe_load(PRICES.read_text(encoding="utf-8")) or {}
    if user_file is not None and user_file.is_file():
        prices.update(yaml.safe_load(user_file.read_text(encoding="utf-8")) or {})
    return prices


def ranks_of(records: Sequence[Record]) -> np.ndarray:
    return np.array([np.inf if r.rank is None else r.rank for r in records], dtype=float)


def values_of(records: Sequence[Record], protocol: str) -> dict[str, np.ndarray]:
    """Every accuracy metric per record (NaN where a record has nothing to measure: a
    dialogue case whose gold the dialogue had all named already)."""
    if protocol == "conversation":
        return {"hit_rate": np.array([r.hit_turn is not None for r in records], dtype=float)}
    if protocol == "requests":
        nan = float("nan")
        return {
            "outcome_checks": np.array(
                [np.mean(list(r.checks.values())) if r.checks else 0.0 for r in records]
            ),
            "all_checks": np.array(
                [float(bool(r.checks) and all(r.checks.values())) for r in records]
            ),
            "plan_accuracy": np.array(
                [nan if r.plan_ok is None else float(r.plan_ok) for r in records]
            ),
        }
    if protocol == "tags":
        return {
            "NDCG@10": np.array([ndcg_of_list(r.items, set(r.gold), 10) for r in records]),
            "Recall@10": np.array([recall(r.items, r.gold, 10) for r in records]),
            "Recall@50": np.array([recall(r.items, r.gold, 50) for r in records]),
        }
    if protocol == "ratings":
        err = np.array(
            [np.nan if r.prediction is None else r.prediction - (r.rating or 0.0) for r in records]
        )
        return {"MAE": np.abs(err), "MSE": err**2}
    if protocol == "dialogues":
        out = {}
        for k in KS[protocol]:
            out[f"Recall@{k}"] = np.array([recall(r.items, r.gold_new, k) for r in records])
        for k in KS[protocol]:
            out[f"Recall@{k} all"] = np.array([recall(r.items, r.gold, k) for r in records])
        return out
    return per_user(ranks_of(records), KS[protocol])


def _accuracy(records: Sequence[Record], protocol: str, seed: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, v in values_of(records, protocol).items():
        v = v[~np.isnan(v)]
        if not len(v):
            continue
        lo, hi = beyond.bootstrap_ci(v, seed=seed)
        out[name] = {"mean": float(v.mean()), "ci": [lo, hi], "n": len(v)}
    return out


def _beyond(
    records: Sequence[Record], dataset: Dataset, popularity: np.ndarray, prices: dict
) -> dict[str, Any]:
    catalog = dataset.catalog
    lists = [r.items for r in records]
    genres = {it.item_id: frozenset(it.genres) for it in catalog}
    counts = {catalog.id_at(i): float(popularity[i]) for i in range(1, len(catalog) + 1)}
    diversity = [
        d for lst in lists if (d := beyond.intra_list_diversity(lst[:10], genres)) is not None
    ]
    latencies = [r.latency_ms for r in records]
    n = max(1, len(records))
    explained = sum(r.explanations for r in records)
    model = next((r.model for r in records if r.model), None)
    price = prices.get(model or "")
    tokens_in = sum(r.input_tokens for r in records) / n
    tokens_out = sum(r.output_tokens for r in records) / n
    cost = None
    if price is not None:
        cost = (tokens_in * price.get("input", 0.0) + tokens_out * price.get("output", 0.0)) / 1000
    return {
        "coverage": beyond.coverage(lists, len(catalog)),
        "diversity": float(np.mean(diversity)) if diversity else None,
        "popularity_percentile": beyond.mean_over_lists(
            lists, beyond.popularity_percentiles(counts)
        ),
        "novelty": beyond.mean_over_lists(
            lists, beyond.novelty_scores(counts, dataset.interactions.n_users)
        ),
        "latency_p50_ms": beyond.percentile(latencies, 50),
        "latency_p95_ms": beyond.percentile(latencies, 95),
        "llm_calls_per_request": sum(r.llm_calls for r in records) / n,
        "input_tokens_per_request": tokens_in,
        "output_tokens_per_request": tokens_out,
        "cost_per_request_usd": cost,
        "model": model,
        "repairs_per_request": sum(r.repairs for r in records) / n,
        "tool_failures_per_request": sum(r.tool_failures for r in records) / n,
        "explanation_faithfulness": (
            1 - sum(r.unfaithful_explanations for r in records) / explained if explained else None
        ),
    }


def _errors(records: Sequence[Record]) -> dict[str, float]:
    """LLM-ranker error rates: per request, the share of candidates affected."""
    totals: dict[str, float] = defaultdict(float)
    for r in records:
        for key, value in r.errors.items():
            totals[key] += value
    n = max(1, len(records))
    out = {f"{k}_per_request": v / n for k, v in sorted(totals.items())}
    present = [r.target_in_candidates for r in records if r.target_in_candidates is not None]
    if present:
        out["target_in_candidates"] = float(np.mean(present))
    return out


def rating_summary(records: Sequence[Record], seed: int) -> dict[str, Any]:
    """RMSE (the interval: the square roots of MSE's), ROC-AUC of the predicted stars for
    4+ stars with a bootstrap interval, and how many answers were unreadable."""
    scored = [r for r in records if r.prediction is not None and r.rating is not None]
    truth = np.array([r.rating for r in scored], dtype=float)
    pred = np.array([r.prediction for r in scored], dtype=float)
    sq = (pred - truth) ** 2
    out: dict[str, Any] = {
        "cases": len(scored),
        "unparsed": sum(r.errors.get("unparsed", 0) for r in records),
        "positives": float((truth >= POSITIVE).mean()) if len(truth) else None,
    }
    if len(sq):
        lo, hi = beyond.bootstrap_ci(sq, seed=seed)
        out["RMSE"] = {
            "mean": float(np.sqrt(sq.mean())),
            "ci": [float(np.sqrt(lo)), float(np.sqrt(hi))],
        }
        auc = roc_auc(truth >= POSITIVE, pred)
        if auc is not None:
            rng = np.random.default_rng(seed)
            draws = []
            for _ in range(1000):
                pick = rng.integers(0, len(truth), len(truth))
                value = roc_auc(truth[pick] >= POSITIVE, pred[pick])
                if value is not None:
                    draws.append(value)
            out["ROC-AUC"] = {
                "mean": auc,
                "ci": [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))],
            }
    return out


def summarize(
    config: RunConfig,
    records: Sequence[Record],
    dataset: Dataset,
    popularity: np.ndarray,
    prices: dict[str, dict[str, float]],
) -> dict[str, Any]:
    by_pipeline: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_pipeline[r.pipeline].append(r)
    pipelines = {}
    for name, recs in by_pipeline.items():
        ok = [r for r in recs if r.failure is None]
        entry: dict[str, Any] = {
            "users": len(recs),
            "failures": len(recs) - len(ok),
            "accuracy": _accuracy(recs, config.protocol, config.seed) if recs else {},
            "beyond": _beyond(ok, dataset, popularity, prices),
        }
        if config.protocol == "candidates":
            entry["ranker_errors"] = _errors(ok)
        proposed = sum(r.titles_proposed for r in ok)
        if proposed:
            entry["model_titles"] = {
                "proposed_per_request": proposed / max(1, len(ok)),
                "found_in_catalog": sum(r.titles_found for r in ok) / proposed,
                "gold_only_from_model": sum(len(r.model_gold) for r in ok),
                "cases_with_gold_only_from_model": sum(bool(r.model_gold) for r in ok),
            }
        if config.protocol == "requests":
            checks = [v for r in recs for v in r.checks.values()]
            by_check: dict[str, list[bool]] = defaultdict(list)
            for r in recs:
                for key, value in r.checks.items():
                    by_check[key.split(":", 1)[1]].append(value)
            entry["requests"] = {
                "checks_passed": sum(checks),
                "checks": len(checks),
                "share_passed": sum(checks) / max(1, len(checks)),
                "by_check": {k: sum(v) / len(v) for k, v in sorted(by_check.items())},
                "failed_cases": [r.user_id for r in recs if not all(r.checks.values() or [False])],
                "model_steps_per_request": sum(r.model_steps for r in ok) / max(1, len(ok)),
            }
        if config.protocol == "ratings":
            entry["ratings"] = rating_summary(ok, config.seed)
        if config.protocol == "conversation":
            hits = [r.hit_turn for r in ok if r.hit_turn is not None]
            entry["conversation"] = {
                "hit_rate": len(hits) / max(1, len(recs)),
                "turns_to_hit": float(np.mean(hits)) if hits else None,
                "llm_calls_per_conversation": sum(r.llm_calls for r in ok) / max(1, len(ok)),
                "tool_failures_per_conversation": sum(r.tool_failures for r in ok)
                / max(1, len(ok)),
                "title_leaks": sum(r.errors.get("title_leaks", 0) for r in ok),
            }
        pipelines[name] = entry
    notes: list[str] = []  # protocol, split and seed are in the config, and in the report's header
    if config.protocol == "full-rank":
        notes.append(
            "popularity and sasrec rank every item; list-based pipelines (vector, hybrid, "
            f"planner, llm, llm-rerank) return their top {config.k}, so a target outside it "
            "counts as a miss (their MRR is MRR@" + str(config.k) + ")"
        )
    if config.protocol == "candidates":
        source = (
            "the hybrid retriever's top 20 (the target may be missing)"
            if config.candidates_from == "hybrid"
            else "the target plus 19 random unseen items, shuffled"
        )
        notes.append(f"candidates: {source}")
    if config.protocol == "conversation":
        notes.append(
            f"simulator: {config.simulator}; [attrs] = the simulator knows the target's genres "
            "and year (inflates scores), [no-attrs] = history only"
        )
    if config.protocol == "requests":
        notes.append(
            f"cases: {config.cases or 'the packaged requests.jsonl'}; outcome_checks = the share "
            "of a case's checks its answer passes (the mean over cases), all_checks = cases "
            "passing every check, plan_accuracy = the right kind of answer with every expected "
            "step run"
        )
    if config.protocol == "dialogues":
        notes.append(
            f"cases: {config.cases}; Recall@k over the gold items the dialogue had not named "
            "yet (cases that have one), 'all' over every gold item; agents observe the "
            "earlier messages and answer the last, as a new user; sasrec and vector score "
            "the movies the person said they liked"
        )
    return {
        "run_id": config.run_id,
        "protocol": config.protocol,
        "dataset": config.dataset,
        "users": len({r.user_idx for r in records}),
        "notes": notes,
        "pipelines": pipelines,
    }


__all__ = ["HEADLINE", "KS", "load_prices", "ranks_of", "summarize", "values_of"]
