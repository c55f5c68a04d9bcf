"""A conversation: who the user is, what was shown, and one `ask` per turn.

A turn parses the message (merging it with the previous request when it only refines it),
lets the LLM agent or the rule-based planner call the tools, makes sure the tools rank the
result, passes it through the guard, and logs it.
"""

from __future__ import annotations

import secrets
import statistics
import time
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from recagent.agent.graph import AgentTurn, Event, ToolCallingAgent, picks_from_text
from recagent.agent.guard import Guard
from recagent.agent.llm import LLMUnavailable
from recagent.agent.planner import SCORE_K, Planner
from recagent.agent.ranking import blend, order_by
from recagent.agent.request import Request, RequestParser, clamp_k
from recagent.agent.runlog import RunLog, TurnRecord
from recagent.agent.schema import FinalPick, RankedItem, RankedList
from recagent.config import AgentConfig
from recagent.data.dataset import Dataset
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import Evidence, ToolContext, run_tool

MEMORY_TURNS = 3


@dataclass
class SessionState:
    last_request: Request | None = None
    last_list: RankedList | None = None
    shown: list[str] = field(default_factory=list)
    messages: list[BaseMessage] = field(default_factory=list)


def refine(new: Request, last: Request, last_list: RankedList | None) -> Request:
    """The previous request adjusted by a refinement ("no horror", "older ones", ...)."""
    merged = last.model_copy(deep=True)
    merged.text, merged.notices = new.text, list(new.notices)
    merged.more_like_rank, merged.older, merged.newer, merged.more = None, False, False, False
    if new.genres_none:
        merged.genres_none = sorted(set(merged.genres_none) | set(new.genres_none))
        merged.genres_all = [g for g in merged.genres_all if g not in new.genres_none]
        merged.genres_any = [g for g in merged.genres_any if g not in new.genres_none]
    if new.year_min is not None or new.year_max is not None:
        merged.year_min, merged.year_max = new.year_min, new.year_max
    merged.k = new.k or merged.k
    merged.include_seen = merged.include_seen or new.include_seen
    years = [it.year for it in (last_list.items if last_list else []) if it.year]
    if years and (new.older or new.newer):
        middle = int(statistics.median(years))
        if new.older:
            merged.year_min, merged.year_max = None, middle - 1
        else:
            merged.year_min, merged.year_max = middle + 1, None
    merged.more = new.more
    if new.more_like_rank is not None:
        merged.more_like_rank = new.more_like_rank
        merged.query, merged.reference_titles = "", []
    return merged


class ChatSession:
    def __init__(
        self,
        dataset: Dataset,
        registry: PromptRegistry,
        agent_cfg: AgentConfig,
        scorer: object = None,
        index: object = None,
        agent: ToolCallingAgent | None = None,
        model_name: str | None = None,
        runlog: RunLog | None = None,
        profile_writer: object = None,
    ) -> None:
        self.dataset = dataset
        self.registry = registry
        self.agent_cfg = agent_cfg
        self.agent = agent
        self.model_name = model_name
        self.runlog = runlog
        self.planner = Planner(registry)
        latest = max((it.year for it in dataset.catalog if it.year), default=None)
        self.parser = RequestParser(dataset.genres, latest)
        self.ctx = ToolContext(
            dataset=dataset, scorer=scorer, index=index, profile_writer=profile_writer
        )
        self.session_id = secrets.token_hex(6)
        self.state = SessionState()
        self.preset_candidates: list[str] | None = None  # evaluation: rank only these
        self.last_turn: TurnRecord | None = None

    @property
    def mode(self) -> str:
        return "llm" if self.agent else "planner"

    def set_user(self, user_id: str | None) -> str:
        """Switch user; an unknown id is a new user with no history (said, not an error)."""
        self.reset()
        self.ctx.user_id = user_id
        idx = self.dataset.interactions.user_idx_of(user_id) if user_id else None
        if idx is None:
            self.ctx.history, self.ctx.history_ratings = [], None
            if user_id:
                return f"user {user_id} is not in {self.dataset.name}: a new user with no history"
            return "no user: recommendations come from the request alone"
        self.ctx.history = self.dataset.catalog.ids_at(self.dataset.interactions.sequence(idx))
        if self.dataset.interactions.has_ratings:
            ratings = self.dataset.interactions.ratings_of(idx)
            self.ctx.history_ratings = [None if r != r else float(r) for r in ratings]
        return f"user {user_id}: {len(self.ctx.history)} items in the history"

    def reset(self) -> None:
        self.state = SessionState()
        self.ctx.extras.clear()

    def why(self, n: int) -> RankedItem | None:
        items = self.state.last_list.items if self.state.last_list else []
        return items[n - 1] if 1 <= n <= len(items) else None

    def ask(self, message: str, k: int | None = None, on_event: Event | None = None) -> RankedList:
        started = time.perf_counter()
        ctx = self.ctx
        request = self.parser.parse(message)
        notices = list(request.notices)
        if not request.text:
            notices.append(
                "empty message: recommending from your history"
                if ctx.history
                else "empty message: showing popular items"
            )
        last = self.state.last_request
        effective = (
            refine(request, last, self.state.last_list)
            if request.is_refinement and last
            else request
        )
        k = clamp_k(k if k is not None else effective.k, notices, self.agent_cfg.k)
        ctx.new_turn()
        self._seed_preset()
        references, missing = self.planner.resolve_references(ctx, effective.reference_titles)
        notices += [f"no title like {t!r} in the catalog" for t in missing]
        if effective.more_like_rank and self.state.last_list:
            n = effective.more_like_rank
            pick = self.why(n if n > 0 else len(self.state.last_list.items))  # -1 = "the last one"
            if pick:
                references.append(pick.item_id)
        exclude = list(self.state.shown) if effective.more else []

        turn: AgentTurn | None = None
        fallback = None
        picks: list[FinalPick] = []
        if self.agent is not None:
            try:
                turn = self.agent.run(
                    ctx,
                    request.text or "Recommend something for me.",
                    effective,
                    k,
                    self.state.messages,
                    on_event,
                    shortlist=lambda: self._shortlist(effective, k, references, exclude),
                )
                picks = turn.answer.items if turn.answer else picks_from_text(turn.text, ctx)
            except LLMUnavailable as exc:
                fallback = str(exc)
                notices.append(f"LLM unavailable ({exc}); answered by the rule-based planner")
                ctx.new_turn()
                self._seed_preset()
                references = self.planner.resolve_references(ctx, effective.reference_titles)[0]

        guard = Guard(ctx, effective, k, references, exclude, allowed_ids=self.preset_candidates)
        repairs: dict[str, int] = {}
        if turn is None:
            plan = self.planner.plan(ctx, effective, k, references, exclude, self.preset_candidates)
            scores, pool = plan.scores, plan.ranked
        else:
            scores, pool = self._tool_ranking(ctx, effective, references)
            if sum(guard.rejection(i) is None for i in pool) < k:
                repairs["planner_backfill"] = 1
                plan = self.planner.plan(
                    ctx, effective, k, references, exclude, self.preset_candidates
                )
                scores, pool = plan.scores, plan.ranked
        result = guard.check(picks, pool, scores, lambda i: self.planner.explain(ctx, i, effective))
        repairs.update(result.repairs)
        if turn is not None and turn.malformed_calls:
            repairs["malformed_tool_call"] = turn.malformed_calls
        if turn is not None and turn.answer is None:
            repairs["no_final_answer"] = 1
        ranked = RankedList(
            items=result.items,
            message=self._message(turn, effective, result.items, guard),
            mode="llm" if turn is not None else "planner",
            model=self.model_name if turn is not None else None,
            fallback_reason=fallback,
            notices=notices + result.notices,
            repairs=repairs,
            request=effective,
        )
        self._remember(request.text, effective, ranked)
        self._log(ranked, k, turn, started)
        return ranked

    def _shortlist(
        self, request: Request, k: int, references: list[str], exclude: list[str]
    ) -> list[str]:
        """The tools' best candidates that the guard would accept, for the LLM to choose from
        (topped up by the planner's retrieval when the LLM found too few)."""
        ctx = self.ctx
        guard = Guard(ctx, request, k, references, exclude, allowed_ids=self.preset_candidates)
        _, pool = self._tool_ranking(ctx, request, references)
        if sum(guard.rejection(i) is None for i in pool) < k:
            pool = self.planner.plan(
                ctx, request, k, references, exclude, self.preset_candidates
            ).ranked
        return [i for i in pool if guard.rejection(i) is None][: 2 * k]

    def _seed_preset(self) -> None:
        for item_id in self.preset_candidates or []:
            if item_id in self.dataset.catalog:
                self.ctx.candidates.add(item_id, Evidence(tool="harness", kind="filter"))

    @staticmethod
    def _tool_ranking(
        ctx: ToolContext, request: Request, references: list[str]
    ) -> tuple[dict[str, float], list[str]]:
        """The tools rank, whatever the LLM did: score unscored candidates with SASRec."""
        unscored = [
            i
            for i in ctx.candidates.ids()
            if not any(e.kind == "sequential" for e in ctx.candidates.evidence(i))
        ]
        if unscored:
            run_tool("score_candidates", {"k": min(len(ctx.candidates), SCORE_K)}, ctx)
        scores = blend(ctx.candidates, bool(request.query or references))
        return scores, order_by(scores)

    def _message(
        self, turn: AgentTurn | None, request: Request, items: list[RankedItem], guard: Guard
    ) -> str:
        if turn is not None:
            text = (turn.answer.message if turn.answer else "") or ""
            shown = {it.item_id for it in items}
            allowed = shown | guard.seen | guard.reference_ids
            if text and self.dataset.titles.mentions(text) <= allowed:
                return text
            return f"{len(items)} picks chosen with the tools."
        what = request.query or ", ".join(request.reference_titles) or "your history"
        return f"Offline mode (rule-based planner): {len(items)} picks for {what}."

    def _remember(self, text: str, request: Request, ranked: RankedList) -> None:
        self.state.last_request = request
        self.state.last_list = ranked
        self.state.shown += [
            it.item_id for it in ranked.items if it.item_id not in self.state.shown
        ]
        listing = "; ".join(
            f"{it.rank}. {it.title} ({it.year}) [item_id {it.item_id}]" for it in ranked.items
        )
        self.state.messages += [
            HumanMessage(content=text or "(empty)"),
            AIMessage(content=f"Recommended: {listing}"),
        ]
        self.state.messages = self.state.messages[-2 * MEMORY_TURNS :]

    def _log(self, ranked: RankedList, k: int, turn: AgentTurn | None, started: float) -> None:
        hashes = self.registry.hashes(
            ["explanation", "profile_summary", "system", "explanation_style"]
        )
        if turn is not None:
            hashes.update(turn.prompt_hashes)
        record = TurnRecord(
            session_id=self.session_id,
            dataset=self.dataset.name,
            user_id=self.ctx.user_id,
            mode=ranked.mode,
            model=ranked.model,
            message=ranked.request.text if ranked.request else "",
            k=k,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            llm_calls=turn.llm_calls if turn else 0,
            input_tokens=turn.input_tokens if turn else 0,
            output_tokens=turn.output_tokens if turn else 0,
            tool_calls=[
                {
                    "name": c.name,
                    "args": c.args,
                    "ok": c.ok,
                    "ms": round(c.duration_ms, 2),
                    "error": c.error,
                }
                for c in self.ctx.calls
            ],
            prompt_hashes=hashes,
            repairs=ranked.repairs,
            fallback_reason=ranked.fallback_reason,
            items=[
                {"rank": it.rank, "item_id": it.item_id, "title": it.title} for it in ranked.items
            ],
        )
        self.last_turn = record
        if self.runlog is not None:
            self.runlog.append(record)


__all__ = ["ChatSession", "SessionState", "refine"]
