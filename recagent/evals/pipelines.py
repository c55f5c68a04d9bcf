"""The pipelines the harness ships, each a `Recommender`:

popularity, sasrec  classical scorers over all items (or the candidates); likewise lrurec,
                    hstu, bert4rec, bst (SASRec's top 100 reranked) and fusion
vector              vector recall from the history's embeddings
hybrid              vector recall from the history, then the default model (the best on
                    valid) reranks the recalled items
planner             the offline agent (rule-based planner over the tools)
llm                 the LLM agent through the configured model ([agent] mode: plan or loop)
llm-rerank          an LLM orders a candidate list handed to it (as in LLM-ranking papers)
palr                PALR-lite: the LLM writes the user's preference keywords, then orders the
                    candidates (full ranking: the default model's top 20) given them
llm-titles          the model alone: the titles it names, found in the catalog, in its order
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recagent.agent.turn import AskOptions
from recagent.data.constraints import Constraints
from recagent.evals.recommender import Recommendation, Recommender

if TYPE_CHECKING:
    from recagent.agent.session import ChatSession

HYBRID_RECALL = 200
RERANK_CANDIDATES = 20
MODEL_PIPELINES = ("popularity", "sasrec", "lrurec", "hstu", "bert4rec", "bst", "fusion")
PIPELINES = (
    *MODEL_PIPELINES,
    *("vector", "hybrid", "planner", "llm", "llm-rerank", "palr", "llm-titles"),
)
LLM_PIPELINES = ("llm", "llm-rerank", "palr", "llm-titles")


def _top(ids: Sequence[str], scores: np.ndarray, k: int, exclude: set[str]) -> list[str]:
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    out = []
    for i in order:
        if ids[i] not in exclude:
            out.append(ids[i])
            if len(out) == k:
                break
    return out


@dataclass
class ScorerRecommender:
    """A `Scorer` (popularity, SASRec, HSTU, ...) as a recommender. `full_rank` gives the exact
    rank of the target over all items (history excluded), not just its place in a top-k
    list."""

    name: str
    scorer: Any

    def full_rank(self, history: list[str], target: str, k: int) -> tuple[float, list[str]]:
        from recagent.metrics import target_ranks

        scores = np.asarray(self.scorer.score(history), dtype=np.float64)
        seen = self.scorer.to_idx(history) if history else np.zeros(0, dtype=np.int64)
        rank = target_ranks(scores[None, :], self.scorer.to_idx([target]), [seen])[0]
        top = [item_id for item_id, _ in self.scorer.recommend(history, k, exclude=set(history))]
        return float(rank), top

    def recommend(
        self,
        history: list[str],
        k: int,
        request: str | None = None,
        candidates: list[str] | None = None,
        user_id: str | None = None,
    ) -> Recommendation:
        if candidates is not None:
            scores = np.asarray(self.scorer.score(history, candidates))
            return Recommendation(item_ids=_top(candidates, scores, k, set()))
        ranked = self.scorer.recommend(history, k, exclude=set(history))
        return Recommendation(item_ids=[item_id for item_id, _ in ranked])


@dataclass
class VectorRecommender:
    """Items nearest the history in the embedding space (the `similar_items` tool's logic)."""

    index: Any
    name: str = "vector"

    def recommend(
        self,
        history: list[str],
        k: int,
        request: str | None = None,
        candidates: list[str] | None = None,
        user_id: str | None = None,
    ) -> Recommendation:
        if not history:
            return Recommendation(item_ids=[])
        if candidates is not None:
            filters = Constraints(include_ids=list(candidates))
            hits = self.index.similar_to_history(history, len(candidates), filters)
            ranked = [h.item_id for h in hits]
            ranked += [c for c in candidates if c not in ranked]  # unreachable ones last
            return Recommendation(item_ids=ranked[:k])
        hits = self.index.similar_to_history(history, k, Constraints(exclude_ids=list(history)))
        return Recommendation(item_ids=[h.item_id for h in hits])


@dataclass
class HybridRecommender:
    """Recall from the history's embeddings, then a scorer orders what was recalled."""

    index: Any
    scorer: Any
    recall: int = HYBRID_RECALL
    name: str = "hybrid"

    def recall_ids(self, history: list[str], n: int) -> list[str]:
        if not history:
            return [i for i, _ in self.scorer.recommend(history, n, exclude=set())]
        hits = self.index.similar_to_history(history, n, Constraints(exclude_ids=list(history)))
        return [h.item_id for h in hits]

    def recommend(
        self,
        history: list[str],
        k: int,
        request: str | None = None,
        candidates: list[str] | None = None,
        user_id: str | None = None,
    ) -> Recommendation:
        pool = list(candidates) if candidates is not None else self.recall_ids(history, self.recall)
        if not pool:
            return Recommendation(item_ids=[])
        scores = np.asarray(self.scorer.score(history, pool))
        return Recommendation(item_ids=_top(pool, scores, k, set()))


@dataclass
class SessionRecommender:
    """The agent (offline planner or LLM) answering one turn per user (one session per
    worker thread)."""

    name: str
    make_session: Callable[[], ChatSession]
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def session(self) -> ChatSession:
        if not hasattr(self._local, "session"):
            self._local.session = self.make_session()
        return self._local.session

    def recommend(
        self,
        history: list[str],
        k: int,
        request: str | None = None,
        candidates: list[str] | None = None,
        user_id: str | None = None,
    ) -> Recommendation:
        session = self.session()
        session.set_user(None)
        session.ctx.user_id = user_id
        options = AskOptions(
            history=list(history), allowed_ids=None if candidates is None else list(candidates)
        )
        ranked = session.ask(request or "", k=k, options=options)
        record = session.last_turn
        unfaithful = ranked.repairs.get("unfaithful_explanation", 0)
        return Recommendation(
            item_ids=[it.item_id for it in ranked.items],
            explanations={it.item_id: it.explanation for it in ranked.items},
            unfaithful_explanations=unfaithful,
            llm_calls=record.llm_calls if record else 0,
            input_tokens=record.input_tokens if record else 0,
            output_tokens=record.output_tokens if record else 0,
            repairs=sum(v for key, v in ranked.repairs.items() if key != "backfilled"),
            tool_calls=len(session.ctx.calls),
            tool_failures=sum(not c.ok for c in session.ctx.calls),
            model=ranked.model,
        )


@dataclass
class LLMRerankRecommender:
    """An LLM orders a candidate list it is handed (candidates protocol: the shuffled 20;
    full ranking: the retriever's top 20, the hybrid pipeline's for llm-rerank). Its raw
    output is kept so the harness can count items outside the list, duplicates, seen and
    missing items."""

    rank_fn: Callable[[list[str], list[str], int], tuple[list[str], dict[str, int]]]
    recall: Recommender | None = None
    name: str = "llm-rerank"

    def recommend(
        self,
        history: list[str],
        k: int,
        request: str | None = None,
        candidates: list[str] | None = None,
        user_id: str | None = None,
    ) -> Recommendation:
        pool = candidates
        if pool is None:
            if self.recall is None:
                raise ValueError(f"{self.name} needs candidates or a retriever")
            pool = self.recall.recommend(history, RERANK_CANDIDATES).item_ids
        ranked, usage = self.rank_fn(history, list(pool), k)
        return Recommendation(
            item_ids=ranked,
            llm_calls=usage.get("calls", 0),
            input_tokens=usage.get("input_tokens", 0),
            output_tokens=usage.get("output_tokens", 0),
        )


__all__ = [
    "LLM_PIPELINES",
    "PIPELINES",
    "HybridRecommender",
    "LLMRerankRecommender",
    "Recommender",
    "ScorerRecommender",
    "SessionRecommender",
    "VectorRecommender",
]
