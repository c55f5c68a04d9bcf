"""A conversation: who the user is, what they said, what was shown, and one `ask` per turn.

A turn is a short pipeline over one value (`Turn`) built once:

    message -> understand -> gather -> rank -> guard -> respond
               Request       tools     scores  Constraints  RankedList + run log

understand: the LLM's typed reading (validated against the catalog) or the rule reader's; a
refinement merges with the previous request; what the person says they loved, saw or
disliked goes into the conversation memory. gather: the planner's fixed plan of tool calls
(offline, and for a clear LLM turn) or the LLM's own tool loop. rank: the blended order,
computed once. guard: one `Guard` that checks and repairs the proposed list. respond: the
`RankedList`, with what the session learned, and a run-log record that keeps both readings
when the model's and the rules' differ.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from recagent.agent.graph import AgentTurn, Event, ToolCallingAgent
from recagent.agent.guard import Guard
from recagent.agent.llm import LLMUnavailable
from recagent.agent.memory import ConversationMemory
from recagent.agent.planner import RECALL_K, SCORE_K, Planner, recall_filters
from recagent.agent.ranking import Ranking
from recagent.agent.request import ChatMessage, Mention, Request, clamp_k, refine
from recagent.agent.rules import RuleReader
from recagent.agent.runlog import RunLog, TurnRecord
from recagent.agent.schema import FinalPick, RankedItem, RankedList
from recagent.agent.turn import AskOptions, Turn, constraints_for
from recagent.config import AgentConfig
from recagent.data.constraints import ConstraintError
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import ToolContext, run_tool

MEMORY_TURNS = 3
MODEL_PICKS = 10  # the model chooses and explains at most this many; the tools rank the rest
SHORTLIST_EXTRA = 5  # candidates the model sees beyond the ones it must pick
ROLES = ("user", "assistant")


@dataclass
class SessionState:
    last_request: Request | None = None
    last_list: RankedList | None = None
    shown: list[str] = field(default_factory=list)
    messages: list[BaseMessage] = field(default_factory=list)  # the recent conversation


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
        pairs: object = None,
        popularity: object = None,
        scorers: object = None,
        similar_index: object = None,
    ) -> None:
        self.dataset = dataset
        self.registry = registry
        self.agent_cfg = agent_cfg
        self.agent = agent
        self.model_name = model_name
        self.runlog = runlog
        self.planner = Planner(registry)
        self.reader = RuleReader(dataset.catalog, dataset.titles, dataset.genres)
        self.memory = ConversationMemory()
        self.ctx = ToolContext(
            dataset=dataset,
            scorer=scorer,
            index=index,
            pairs=pairs,
            profile_writer=profile_writer,
            popularity=popularity,
            scorers=scorers,
            similar_index=similar_index,
        )
        self.user_history: list[str] = []
        self.user_ratings: list[float | None] | None = None
        self.session_id = secrets.token_hex(6)
        self.state = SessionState()
        self.last_turn: TurnRecord | None = None

    @property
    def mode(self) -> str:
        return "llm" if self.agent else "planner"

    def set_user(self, user_id: str | None) -> str:
        """Switch user; an unknown id is a new user with no history (said, not an error)."""
        self.reset()
        self.ctx.user_id = user_id
        self.ctx.history, self.ctx.history_ratings = [], None
        idx = self.dataset.interactions.user_idx_of(user_id) if user_id else None
        if idx is None:
            self.user_history, self.user_ratings = [], None
            if user_id:
                return f"user {user_id} is not in {self.dataset.name}: a new user with no history"
            return "no user: recommendations come from what you say"
        self.user_history = self.dataset.catalog.ids_at(self.dataset.interactions.sequence(idx))
        self.ctx.history = list(self.user_history)
        self.user_ratings = None
        if self.dataset.interactions.has_ratings:
            ratings = self.dataset.interactions.ratings_of(idx)
            self.user_ratings = [None if r != r else float(r) for r in ratings]
        return f"user {user_id}: {len(self.user_history)} items in the history"

    def reset(self) -> None:
        """Forget the conversation (the user and their stored history stay)."""
        self.state = SessionState()
        self.memory.reset()
        self.ctx.extras.clear()

    def feedback(self, item_id: str, liked: bool) -> str:
        """A like or dislike of an item (a card's buttons), learned exactly as the person
        saying "I loved <Title (year)>" / "I didn't like <Title (year)>": a loved item joins
        the history, a disliked one never comes back. Returns the words it stands for."""
        if item_id not in self.dataset.catalog:
            raise ConfigError(f"no item {item_id!r} in {self.dataset.name}")
        label = self.dataset.catalog[item_id].label
        text = f"I loved {label}" if liked else f"I didn't like {label}"
        mention = Mention(title=label, item_id=item_id, feeling="loved" if liked else "disliked")
        self.memory.hear(Request(text=text, mentions=[mention]), self.state.shown)
        self.state.messages.append(HumanMessage(content=text))
        self.state.messages = self.state.messages[-2 * MEMORY_TURNS :]
        return text

    def why(self, n: int) -> RankedItem | None:
        items = self.state.last_list.items if self.state.last_list else []
        return items[n - 1] if 1 <= n <= len(items) else None

    # ---- a conversation that already happened ----------------------------------------------

    def observe(self, role: str, text: str) -> None:
        """An earlier message of the conversation, by the person (`user`) or the other side
        (`assistant`): the session learns from it as if it had been there."""
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}: a message is by 'user' or 'assistant'")
        request = self.memory.listen(self.reader, role, text)
        if role == "user":
            if request.asks_something():
                self.state.last_request = request
            self.state.messages.append(HumanMessage(content=text))
        else:
            self.state.messages.append(AIMessage(content=text))
        self.state.messages = self.state.messages[-2 * MEMORY_TURNS :]

    def replay(self, messages: Sequence[ChatMessage]) -> str:
        """Observe a conversation that already happened; returns the message to answer next:
        the last one when it is the person's (it is not observed), else "" (every message
        observed)."""
        items = list(messages)
        last = items.pop() if items and items[-1].role == "user" else None
        for m in items:
            self.observe(m.role, m.text)
        return last.text if last else ""

    # ---- one turn ------------------------------------------------------------------------

    def ask(
        self,
        message: str,
        k: int | None = None,
        on_event: Event | None = None,
        options: AskOptions | None = None,
    ) -> RankedList:
        """One turn. `on_event(kind, data)` hears it as it goes: "step" (a stage, in words),
        "tool" ((name, args) of each tool as it starts), "tool_call" ((name, args) of each
        call the model makes), "token" (the model's text); `recagent.agent.steps` words them."""
        started = time.perf_counter()
        options = options or AskOptions()
        emit = on_event or (lambda kind, data: None)
        self.ctx.on_call = (lambda name, args: emit("tool", (name, args))) if on_event else None
        notices: list[str] = []
        repairs: Counter[str] = Counter()
        llm = AgentTurn(answer=None)

        # understand (the profile the model sees is the history known before this message)
        stored = options.history if options.history is not None else self.user_history
        self.ctx.history = [*stored, *(i for i in self.memory.history() if i not in stored)]
        rules = self.reader.read(message)
        reading, rival, fallback = self._understand(message, rules, llm, repairs, emit, k)
        notices += reading.notices
        if fallback:
            emit("step", f"LLM unavailable ({fallback}); answering with the rule-based planner")
            notices.append(f"LLM unavailable ({fallback}); answered by the rule-based planner")
        k = self._count(k, reading, notices)
        last = self.state.last_request
        years = [it.year for it in (self.state.last_list.items if self.state.last_list else [])]
        effective = (
            refine(reading, last, [y for y in years if y])
            if reading.is_refinement and last
            else reading
        )
        self.memory.hear(reading, self.state.shown)
        if not message.strip():
            notices.append(
                "empty message: recommending from "
                + ("your history" if self.user_history or options.history else "what is popular")
            )
        turn = self._turn(effective, k, options, notices)

        # gather and rank
        ctx = self.ctx
        ctx.new_turn()
        ctx.history = list(turn.history)
        ctx.history_ratings = None
        if options.history is None and self.user_ratings is not None:
            learned: list[float | None] = [None] * len(turn.learned_history)
            ctx.history_ratings = [*self.user_ratings, *learned]
        use_llm = self.agent is not None and fallback is None
        emit("step", "gathering candidates with the tools")
        notes = self.planner.gather(ctx, turn)
        ranking = self.planner.rank(ctx, turn)
        guard = Guard(ctx, turn)
        picks: list[FinalPick] = []
        if use_llm:
            picks, ranking = self._choose(turn, ranking, guard, llm, emit)
            if llm.failed:
                fallback = llm.failed
                emit("step", f"LLM unavailable ({fallback}); answering with the rule-based planner")
                notices.append(f"LLM unavailable ({fallback}); answered by the rule-based planner")

        # guard and respond
        emit("step", "checking the answer")
        keep = use_llm and not llm.failed and self.agent_cfg.order == "llm"
        result = guard.check(
            picks,
            ranking,
            lambda i: self.planner.explain(ctx, i, turn),
            keep_pick_order=keep,
            expected=min(turn.k, MODEL_PICKS),
        )
        repairs.update(result.repairs)
        if llm.malformed_calls:
            repairs["malformed_tool_call"] += llm.malformed_calls
        if llm.truncated:
            repairs["truncated_explanation"] += llm.truncated
        answered = use_llm and not llm.failed
        if answered and llm.answer is None:
            repairs["no_final_answer"] += 1
        ranked = RankedList(
            items=result.items,
            message=self._message(llm if answered else None, turn, result.items, guard, repairs),
            mode="llm" if answered else "planner",
            model=self.model_name if answered else None,
            fallback_reason=fallback,
            notices=notices + result.notices + [n for n in notes if n],
            repairs=dict(repairs),
            request=effective,
            learned=self.memory.learned(self.dataset.catalog),
        )
        self._remember(message, effective, ranked)
        self._log(ranked, turn, llm, rival, started)
        return ranked

    def _understand(
        self,
        message: str,
        rules: Request,
        llm: AgentTurn,
        repairs: Counter[str],
        emit: Event,
        k: int | None,
    ) -> tuple[Request, Request | None, str | None]:
        """The reading the turn acts on, the other reader's when it differs, and why the LLM
        failed (None when it did not)."""
        if self.agent is None:
            return rules, None, None
        emit("step", "reading the request")
        known = [self.dataset.catalog[i].label for i in self.memory.feelings]
        found = [m.title for m in rules.mentions if m.item_id and m.title not in known]
        try:
            reading = self.agent.understand(
                self.ctx,
                self.state.messages,
                message,
                llm,
                emit,
                titles=known + found,
                k=min(MODEL_PICKS, clamp_k(k if k is not None else rules.k, [], self.agent_cfg.k)),
            )
        except LLMUnavailable as exc:
            llm.failed = str(exc)
            return rules, None, str(exc)
        if isinstance(reading, str):  # the model's structure was invalid
            repairs["invalid_reading"] += 1
            rules.notices.append(f"the model's reading was invalid ({reading}); used the rules")
            return rules, None, None
        # references to this session's own answers ("more like the second one", "not the
        # third", "older ones") are the rules' to read: the model sees no numbered list
        reading.more_like_rank, reading.older = rules.more_like_rank, rules.older
        reading.newer, reading.more = rules.newer, rules.more
        reading.mentions += [m for m in rules.mentions if m.rank is not None]
        # titles the model left out keep the rules' feeling (small models drop them)
        named = {m.item_id for m in reading.mentions}
        reading.mentions += [
            m for m in rules.mentions if m.item_id and m.item_id not in named and m.rank is None
        ]
        return reading, (None if reading.same_reading(rules) else rules), None

    def _count(self, k: int | None, reading: Request, notices: list[str]) -> int:
        if k is not None and reading.k is not None and k != reading.k:
            notices.append(f"the message asks for {reading.k} items; --k {k} wins")
        return clamp_k(k if k is not None else reading.k, notices, self.agent_cfg.k)

    def _turn(self, request: Request, k: int, options: AskOptions, notices: list[str]) -> Turn:
        """Everything the later stages act on, built once."""
        catalog = self.dataset.catalog
        stored = list(options.history) if options.history is not None else self.user_history
        stored = [i for i in stored if i in catalog]
        learned = [i for i in self.memory.history() if i not in set(stored)]
        history = stored + learned
        references = [
            m.item_id
            for m in request.mentions
            if m.feeling == "like_this" and m.item_id and m.rank is None
        ]
        last = self.state.last_list
        if request.more_like_rank and last and last.items:
            n = request.more_like_rank
            pick = self.why(n if n > 0 else len(last.items))  # -1 = "the last one"
            if pick:
                references.append(pick.item_id)
        exclusions: dict[str, str] = {}
        if not request.include_seen:
            exclusions.update(dict.fromkeys(history, "seen"))
            # another edition or platform of a seen item is seen too
            for item_id in self.dataset.titles.other_editions(history):
                exclusions.setdefault(item_id, "seen")
        exclusions.update(dict.fromkeys(self.memory.disliked(), "disliked"))
        if request.more:
            exclusions.update({i: "already_shown" for i in self.state.shown if i not in exclusions})
        exclusions.update(dict.fromkeys(references, "reference_item"))
        liked, disliked = self.memory.genre_preferences()
        try:
            constraints = constraints_for(request, exclusions, options.allowed_ids, catalog)
        except ConstraintError as exc:
            notices.append(f"{exc}; ignoring the request's genres")
            request.constraints = request.constraints.relaxed()
            constraints = constraints_for(request, exclusions, options.allowed_ids, catalog)
        seeds = {i: w for i, w in self.memory.seeds().items() if i not in set(stored)}
        return Turn(
            request=request,
            k=k,
            history=history,
            reference_ids=list(dict.fromkeys(references)),
            seeds=seeds,
            exclusions=exclusions,
            disliked=self.memory.disliked(),
            liked_genres=liked,
            disliked_genres=disliked,
            allowed_ids=options.allowed_ids,
            stored_history=len(stored),
            constraints=constraints,
        )

    def _choose(
        self, turn: Turn, ranking: Ranking, guard: Guard, llm: AgentTurn, emit: Event
    ) -> tuple[list[FinalPick], Ranking]:
        """The model picks and explains from the tools' best eligible candidates. If too few
        fit and it asks for more (`search_more`), one more search, ranking and choice."""
        assert self.agent is not None
        for attempt in range(2):
            eligible = [i for i in ranking.order if guard.rejection(i) is None]
            picks = min(turn.k, MODEL_PICKS, len(eligible))
            shortlist = eligible[: picks + SHORTLIST_EXTRA]
            emit("step", f"choosing {picks} of {len(shortlist)} candidates")
            try:
                self.agent.choose(self.ctx, turn, shortlist, llm, emit, picks=max(picks, 1))
            except LLMUnavailable as exc:
                llm.failed = str(exc)
                return [], ranking
            answer = llm.answer
            if attempt or answer is None or not answer.search_more.strip():
                break
            valid = {p.item_id for p in answer.items} & set(shortlist)
            if len(valid) >= min(turn.k, MODEL_PICKS):
                break
            emit("step", f"searching for {answer.search_more!r}, as the model asked")
            filters = recall_filters(turn)
            run_tool(
                "search_items",
                {"query": answer.search_more, "k": RECALL_K, "filters": filters},
                self.ctx,
            )
            if turn.history:
                run_tool("score_candidates", {"k": SCORE_K}, self.ctx)
            ranking = self.planner.rank(self.ctx, turn)
        return (llm.answer.items if llm.answer else []), ranking

    def _message(
        self,
        llm: AgentTurn | None,
        turn: Turn,
        items: list[RankedItem],
        guard: Guard,
        repairs: Counter[str],
    ) -> str:
        if llm is not None:
            text = (llm.answer.message if llm.answer else "") or ""
            if text and guard.message_holds(text, items):
                return text
            if text:
                repairs["unfaithful_message"] += 1
            return f"{len(items)} picks chosen with the tools."
        request = turn.request
        if request.query:
            what = f"“{request.query}”"
        elif turn.reference_ids:
            what = "things like " + ", ".join(
                self.dataset.catalog[i].title for i in turn.reference_ids
            )
        elif turn.seeds:
            what = "what you told me you like"
        elif turn.history:
            what = "your history"
        else:
            what = "what people watch lately"
        c = request.constraints.describe()
        return f"Offline mode (rule-based planner): {len(items)} picks for {what}" + (
            f" ({c})." if c else "."
        )

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

    def _log(
        self,
        ranked: RankedList,
        turn: Turn,
        llm: AgentTurn,
        rival: Request | None,
        started: float,
    ) -> None:
        hashes = self.registry.hashes(
            ["explanation", "profile_summary", "system", "explanation_style"]
        )
        hashes.update(llm.prompt_hashes)
        readings = {}
        if rival is not None and ranked.request is not None:
            readings = {
                ranked.request.reader: ranked.request.model_dump(mode="json"),
                rival.reader: rival.model_dump(mode="json"),
            }
        record = TurnRecord(
            session_id=self.session_id,
            dataset=self.dataset.name,
            user_id=self.ctx.user_id,
            mode=ranked.mode,
            model=ranked.model,
            message=ranked.request.text if ranked.request else "",
            k=turn.k,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            llm_calls=llm.llm_calls,
            input_tokens=llm.input_tokens,
            output_tokens=llm.output_tokens,
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
            readings=readings,
            items=[
                {"rank": it.rank, "item_id": it.item_id, "title": it.title} for it in ranked.items
            ],
        )
        self.last_turn = record
        if self.runlog is not None:
            self.runlog.append(record)


__all__ = ["ChatSession", "SessionState"]
