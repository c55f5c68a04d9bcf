"""A conversation: who the user is, what they said, what was shown, and one `ask` per turn.

A turn is a short pipeline of stages, each a function of the previous stage's value, with
one commit at the end:

    message -> understand -> plan -> execute -> rank -> guard -> respond -> commit
               Request       Plan    Execution  Ranking  checked   RankedList  Conversation

understand: the model's reading (plan mode) or the rules'; a refinement merges with the last
request; what the person says they loved, saw or disliked is a delta to the conversation.
plan: the model's plan (with the planner's steps it left out), the planner's, or (loop mode)
the calls the model makes one at a time. execute: one executor runs it over one candidate
set. rank: the blended order, computed once. guard: one `Guard` checks and repairs what is
proposed. respond: the answer of the kind asked for. commit: the conversation takes the
turn's delta only now, so a turn that fails learns nothing; the run log is written after the
answer leaves.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recagent.agent.conversation import Conversation, ConversationDelta
from recagent.agent.events import Event, no_events
from recagent.agent.executor import Execution, Executor
from recagent.agent.guard import Guard
from recagent.agent.llm import LLMUnavailable
from recagent.agent.llm_agent import AgentTurn, ToolCallingAgent
from recagent.agent.model_plan import model_plan
from recagent.agent.plan import Plan
from recagent.agent.planner import Explainer, write_plan
from recagent.agent.ranking import BlendConfig, Ranking, rank
from recagent.agent.request import ChatMessage, Mention, Request, clamp_k, refine
from recagent.agent.respond import about_answer, list_answer
from recagent.agent.rules import RuleReader
from recagent.agent.runlog import RunLog, TurnRecord
from recagent.agent.schema import FinalPick, RankedItem, RankedList
from recagent.agent.tool_loop import ToolLoop
from recagent.agent.turn import AskOptions, Turn, build_turn
from recagent.agent.turn_record import turn_record
from recagent.agent.understand import MODEL_PICKS, Understood, chat_messages, understand
from recagent.config import AgentConfig
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.models.base import Scorer
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import ToolContext
from recagent.tools.profile import current_profile

if TYPE_CHECKING:
    import numpy as np

    from recagent.agent.profile_writer import ProfileWriter
    from recagent.data.pairs import ItemPairs
    from recagent.index.item_index import ItemIndex
    from recagent.models.ratings import RatingModel
    from recagent.models.scorers import ScorerShelf

SHORTLIST_EXTRA = 5  # candidates the model sees beyond the ones it must pick
ROLES = ("user", "assistant")
FOCUS_FEELINGS = ("loved", "liked")


@dataclass
class Proposal:
    """What the model proposed for a list (its picks in order), and whether it answered."""

    picks: list[FinalPick]
    answered: bool


class ChatSession:
    def __init__(
        self,
        dataset: Dataset,
        registry: PromptRegistry,
        agent_cfg: AgentConfig,
        scorer: Scorer | None = None,
        index: ItemIndex | None = None,
        agent: ToolCallingAgent | None = None,
        model_name: str | None = None,
        runlog: RunLog | None = None,
        profile_writer: ProfileWriter | None = None,
        pairs: ItemPairs | None = None,
        popularity: np.ndarray | None = None,
        scorers: ScorerShelf | None = None,
        similar_index: ItemIndex | None = None,
        loop: ToolLoop | None = None,
        blend: BlendConfig | None = None,
        rating_model: Callable[[], RatingModel | None] | None = None,
    ) -> None:
        self.dataset = dataset
        self.registry = registry
        self.agent_cfg = agent_cfg
        self.agent = agent
        self.loop = loop
        self.model_name = model_name
        self.runlog = runlog
        self.blend = blend or BlendConfig()
        self.explainer = Explainer(registry)
        self.reader = RuleReader(dataset.catalog, dataset.titles, dataset.genres)
        self.ctx = ToolContext(
            dataset=dataset,
            scorer=scorer,
            index=index,
            pairs=pairs,
            profile_writer=profile_writer,
            popularity=popularity,
            scorers=scorers,
            similar_index=similar_index,
            rating_model=rating_model,
        )
        self.user_history: list[str] = []
        self.user_ratings: list[float | None] | None = None
        self.session_id = secrets.token_hex(6)
        self.conversation = Conversation(dataset=dataset.name)
        self.last_turn: TurnRecord | None = None

    @property
    def mode(self) -> str:
        return "llm" if self.agent or self.loop else "planner"

    def set_user(self, user_id: str | None) -> str:
        """Switch user; an unknown id is a new user with no history (said, not an error)."""
        self.conversation = Conversation(dataset=self.dataset.name, user_id=user_id)
        self.ctx.extras.clear()
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
        self.conversation = Conversation(dataset=self.dataset.name, user_id=self.ctx.user_id)
        self.ctx.extras.clear()

    def restore(self, conversation: Conversation) -> None:
        """Continue `conversation` (stored by a server) on this fresh session."""
        if conversation.dataset != self.dataset.name:
            raise ConfigError(
                f"a conversation on {conversation.dataset} cannot continue on {self.dataset.name}"
            )
        self.set_user(conversation.user_id)
        self.conversation = conversation

    def known_history(self) -> list[str]:
        """The stored history, then what the conversation taught."""
        stored = set(self.user_history)
        return [*self.user_history, *(i for i in self.conversation.history() if i not in stored)]

    def feedback(self, item_id: str, liked: bool) -> str:
        """A like or dislike of an item (a card's buttons), learned exactly as the person
        saying "I loved <Title (year)>" / "I didn't like <Title (year)>": a loved item joins
        the history, a disliked one never comes back. Returns the words it stands for."""
        if item_id not in self.dataset.catalog:
            raise ConfigError(f"no item {item_id!r} in {self.dataset.name}")
        label = self.dataset.catalog[item_id].label
        text = f"I loved {label}" if liked else f"I didn't like {label}"
        mention = Mention(title=label, item_id=item_id, feeling="loved" if liked else "disliked")
        delta = self.conversation.hear(Request(text=text, mentions=[mention]))
        delta.messages = [ChatMessage(role="user", text=text)]
        self.conversation = self.conversation.apply(delta)
        return text

    def why(self, n: int) -> RankedItem | None:
        last = self.conversation.last_answer
        items = last.items if last else []
        return items[n - 1] if 1 <= n <= len(items) else None

    # ---- a conversation that already happened ----------------------------------------------

    def observe(self, role: str, text: str) -> None:
        """An earlier message of the conversation, by the person (`user`) or the other side
        (`assistant`): the session learns from it as if it had been there."""
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}: a message is by 'user' or 'assistant'")
        request = self.reader.read(text, role=role)
        conv = self.conversation
        if role == "user":
            delta = conv.hear(request)
            if request.asks_something():
                delta.request = request
        else:
            delta = conv.suggested([m.item_id for m in request.mentions if m.item_id])
        delta.messages = [ChatMessage(role=role, text=text)]  # type: ignore[arg-type]
        self.conversation = conv.apply(delta)

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
        """One turn. `on_event(kind, data)` hears it as it goes (`recagent.agent.events`)."""
        started = time.perf_counter()
        options = options or AskOptions()
        emit = on_event or no_events
        self.ctx.on_call = (lambda name, args: emit("tool", (name, args))) if on_event else None
        conv = self.conversation
        llm = AgentTurn(answer=None)
        notices: list[str] = []

        # understand (the profile the model sees is the history known before this message)
        stored = options.history if options.history is not None else self.user_history
        self.ctx.history = [*stored, *(i for i in conv.history() if i not in set(stored))]
        plan_agent = self.agent if self.loop is None else None
        understood = understand(
            message, self.reader, conv, self.ctx, plan_agent, llm, emit, k, self.agent_cfg.k
        )
        fallback = understood.fallback
        if fallback:
            self._fell_back(fallback, emit, notices)
        reading = understood.request
        notices += reading.notices
        k = self._count(k, reading, notices)
        last = conv.last_request
        years = [it.year for it in conv.last_answer.items if it.year] if conv.last_answer else []
        effective = refine(reading, last, years) if reading.is_refinement and last else reading
        heard = conv.apply(conv.hear(reading))
        if not message.strip():
            has = self.user_history or options.history
            notices.append(
                "empty message: recommending from " + ("your history" if has else "what is popular")
            )
        focus = [
            m.item_id
            for m in reading.mentions
            if m.item_id and m.rank is None and m.feeling in FOCUS_FEELINGS
        ]
        turn = build_turn(
            effective, k, options, heard, self.dataset, self.user_history, focus, notices
        )
        self._prepare_context(turn, options)

        # plan and execute
        use_model = (self.agent is not None or self.loop is not None) and fallback is None
        plan = self._plan(turn, understood, use_model)
        executor = Executor(self.ctx, turn, plan)
        execution = self._execute(turn, plan, executor, heard, message, llm, emit, use_model)
        if llm.failed and fallback is None:
            fallback = llm.failed
            self._fell_back(fallback, emit, notices)
            use_model = False
        repairs: Counter[str] = Counter(understood.repairs)
        repairs.update(execution.repairs)

        # rank, guard, respond
        ranking = rank(self.ctx, turn, self.blend)
        guard = Guard(self.ctx, turn)
        answered = use_model and not llm.failed
        if turn.kind in ("recommend", "rank"):
            proposal = self._propose(turn, ranking, guard, llm, emit, answered)
            if llm.failed:
                fallback = fallback or llm.failed
                self._fell_back(llm.failed, emit, notices)
                answered = False
            emit("step", "checking the answer")
            ranked = list_answer(
                self.ctx,
                turn,
                ranking,
                guard,
                llm if answered else None,
                proposal.picks,
                repairs,
                lambda i: self.explainer.explain(self.ctx, i, turn),
                keep_pick_order=answered and self.agent_cfg.order == "llm",
            )
        else:
            emit("step", "checking the answer")
            ranked = about_answer(self.ctx, turn, heard, execution)
        ranked = ranked.model_copy(
            update={
                "mode": "llm" if answered else "planner",
                "model": self.model_name if answered else None,
                "fallback_reason": fallback,
                "notices": [*notices, *ranked.notices, *execution.notes],
                "repairs": {k: v for k, v in {**repairs, **ranked.repairs}.items() if v},
                "request": effective,
                "plan": execution.plan,
            }
        )

        # commit
        final = heard.apply(
            ConversationDelta(
                request=effective,
                answer=ranked,
                messages=[
                    ChatMessage(role="user", text=message or "(empty)"),
                    ChatMessage(role="assistant", text=_listing(ranked)),
                ],
            )
        )
        ranked.learned = final.learned(self.dataset.catalog)
        self.conversation = final
        hashes = self.registry.hashes(["explanation", "profile_summary", "system"])
        record = turn_record(
            self.session_id,
            self.dataset.name,
            self.ctx,
            ranked,
            turn,
            llm,
            understood,
            execution,
            hashes,
            started,
        )
        self.last_turn = record
        if self.runlog is not None:
            self.runlog.submit(record)  # written off the request path, after the answer
        return ranked

    # ---- stages ------------------------------------------------------------------------------

    @staticmethod
    def _fell_back(reason: str, emit: Event, notices: list[str]) -> None:
        emit("step", f"LLM unavailable ({reason}); answering with the rule-based planner")
        notices.append(f"LLM unavailable ({reason}); answered by the rule-based planner")

    def _count(self, k: int | None, reading: Request, notices: list[str]) -> int:
        if k is not None and reading.k is not None and k != reading.k:
            notices.append(f"the message asks for {reading.k} items; --k {k} wins")
        return clamp_k(k if k is not None else reading.k, notices, self.agent_cfg.k)

    def _prepare_context(self, turn: Turn, options: AskOptions) -> None:
        """The tools' context for this turn: a fresh candidate set, the turn's history."""
        ctx = self.ctx
        ctx.new_turn()
        ctx.history = list(turn.history)
        ctx.history_ratings = None
        if options.history is None and self.user_ratings is not None:
            learned: list[float | None] = [None] * len(turn.learned_history)
            ctx.history_ratings = [*self.user_ratings, *learned]

    def _plan(self, turn: Turn, understood: Understood, use_model: bool) -> Plan:
        """The model's plan (with the planner's steps it left out), or the planner's."""
        if use_model and self.loop is not None:
            return Plan(kind=turn.request.intent, mode="loop")
        if use_model and understood.model is not None:
            raw = understood.model
            return model_plan(raw.plan, raw.titles, turn, self.dataset, understood.repairs)
        return write_plan(turn, self.dataset.catalog)

    def _execute(
        self,
        turn: Turn,
        plan: Plan,
        executor: Executor,
        conv: Conversation,
        message: str,
        llm: AgentTurn,
        emit: Event,
        use_model: bool,
    ) -> Execution:
        """Run the plan (loop mode: let the model call the tools)."""
        current_profile(self.ctx)  # computed once for the explanations
        if plan.mode == "loop" and self.loop is not None:
            emit("step", "the model calls the tools")
            try:
                self.loop.run(self.ctx, turn, executor, chat_messages(conv), message, llm, emit)
            except LLMUnavailable as exc:
                llm.failed = str(exc)
                self.ctx.new_turn()
                fresh = Executor(self.ctx, turn, write_plan(turn, self.dataset.catalog))
                return fresh.run(write_plan(turn, self.dataset.catalog))
            return executor.execution
        emit("step", "gathering candidates with the tools")
        emit("plan", plan)
        return executor.run(plan)

    def _propose(
        self,
        turn: Turn,
        ranking: Ranking,
        guard: Guard,
        llm: AgentTurn,
        emit: Event,
        answered: bool,
    ) -> Proposal:
        """The model's picks from the tools' best eligible candidates (plan mode), or what
        it answered in its loop; nothing offline."""
        if not answered:
            return Proposal([], False)
        if self.loop is not None:
            return Proposal(llm.answer.items if llm.answer else [], True)
        assert self.agent is not None
        eligible = [i for i in ranking.order if guard.rejection(i) is None]
        picks = min(turn.k, MODEL_PICKS, len(eligible))
        shortlist = eligible[: picks + SHORTLIST_EXTRA]
        emit("step", f"choosing {picks} of {len(shortlist)} candidates")
        try:
            self.agent.choose(self.ctx, shortlist, llm, emit, picks=max(picks, 1))
        except LLMUnavailable as exc:
            llm.failed = str(exc)
            return Proposal([], False)
        return Proposal(llm.answer.items if llm.answer else [], True)


def _listing(ranked: RankedList) -> str:
    """The answer as the model reads it in later turns."""
    if ranked.kind in ("judge", "why_not", "profile"):
        return ranked.message
    listing = "; ".join(
        f"{it.rank}. {it.title} ({it.year}) [item_id {it.item_id}]" for it in ranked.items
    )
    return f"Recommended: {listing}"


__all__ = ["ChatSession"]
