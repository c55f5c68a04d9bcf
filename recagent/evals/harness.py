"""Runs pipelines over a protocol's users, one record per (pipeline, user), appended as it
goes. A pipeline that fails on a user is recorded as that user's failure and the run
continues; `resume` skips every (pipeline, user) already recorded. The cases run in this
process (one at a time or in threads) or over Ray workers (`ray_runner`); either way each
case's record is the same."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from recagent.agent.rules import RuleReader
from recagent.agent.schema import RankedItem
from recagent.agent.turn import AskOptions
from recagent.errors import ConfigError
from recagent.evals.dialogues import DialogueCase, liked_history, load_cases
from recagent.evals.env import EvalEnv
from recagent.evals.pipelines import SessionRecommender
from recagent.evals.protocols import Case, base_cases, random_candidates, shuffled
from recagent.evals.ratings import Predictor, RatingCase, make_predictor, rating_cases
from recagent.evals.recommender import Recommendation, Recommender
from recagent.evals.requests import answer_request, load_request_cases
from recagent.evals.runs import VARIANTS, Record, RunConfig, RunDir
from recagent.evals.simulator import LLMSimulator, RulesSimulator, redact
from recagent.evals.tags import TagCase, TextSpace, make_space, tag_cases, universe_of
from recagent.evals.tally import tally_turn
from recagent.evals.titles import TitlesRecommender
from recagent.progress import Reporter

if TYPE_CHECKING:
    from recagent.evals.ray_runner import RayOptions

CONVERSATION_K = 10
C = TypeVar("C")


def build_cases(config: RunConfig, env: EvalEnv) -> list[Case]:
    users = config.users
    if users is None and config.protocol != "full-rank":
        users = 200 if config.protocol == "candidates" else 50
    cases = base_cases(env.dataset, config.split, users, config.seed)
    if config.protocol == "candidates":
        for case in cases:
            if config.candidates_from == "hybrid":
                pool = env.pipeline("hybrid").recall_ids(case.history, 20)  # type: ignore[attr-defined]
                case.candidates = shuffled(pool, config.seed, case.user_idx)
            else:
                case.candidates = random_candidates(env.dataset, case, config.seed)
    return cases


@contextmanager
def recorded(record: Record) -> Iterator[None]:
    """Times the block into `record.latency_ms`; an exception in it becomes the record's
    failure, and the run goes on (Ctrl-C still stops it)."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        record.failure = f"{type(exc).__name__}: {exc}"[:500]
    record.latency_ms = round((time.perf_counter() - started) * 1000, 3)


def first_rank(items: list[str], gold: list[str]) -> float | None:
    """1-based rank of the first of `gold` in `items`; None when none is there."""
    ranks = [items.index(g) + 1 for g in gold if g in items]
    return float(min(ranks)) if ranks else None


def rank_in(items: list[str], target: str) -> float | None:
    try:
        return float(items.index(target) + 1)
    except ValueError:
        return None


def list_errors(
    raw: list[str], candidates: list[str], history: list[str]
) -> tuple[list[str], dict[str, int]]:
    """Clean an answer to a candidate list and count what an LLM ranker gets wrong."""
    allowed, seen = set(candidates), set(history)
    clean: list[str] = []
    errors = {"outside": 0, "duplicates": 0, "seen": 0, "missing": 0}
    for item_id in raw:
        if item_id in seen:
            errors["seen"] += 1
        if item_id not in allowed:
            errors["outside"] += 1
        elif item_id in clean:
            errors["duplicates"] += 1
        else:
            clean.append(item_id)
    errors["missing"] = len(allowed - set(clean))
    return clean, errors


def _from(rec: Recommendation, record: Record) -> None:
    record.titles_proposed += rec.titles_proposed
    record.titles_found += rec.titles_found
    record.llm_calls, record.input_tokens = rec.llm_calls, rec.input_tokens
    record.output_tokens, record.repairs = rec.output_tokens, rec.repairs
    record.tool_calls, record.tool_failures = rec.tool_calls, rec.tool_failures
    record.explanations = len(rec.explanations)
    record.unfaithful_explanations = rec.unfaithful_explanations
    record.model = rec.model


def evaluate_case(pipeline: Recommender, case: Case, config: RunConfig) -> Record:
    record = Record(
        pipeline=pipeline.name, user_idx=case.user_idx, user_id=case.user_id, target=case.target
    )
    with recorded(record):
        if config.protocol == "full-rank" and hasattr(pipeline, "full_rank"):
            rank, items = pipeline.full_rank(case.history, case.target, config.k)
            record.rank, record.items = (None if math.isinf(rank) else rank), items
        else:
            k = len(case.candidates) if case.candidates is not None else config.k
            rec = pipeline.recommend(
                case.history, k, candidates=case.candidates, user_id=case.user_id
            )
            _from(rec, record)
            items = rec.item_ids
            if case.candidates is not None:
                items, record.errors = list_errors(items, case.candidates, case.history)
                record.target_in_candidates = case.target in case.candidates
            record.items = items[: config.k]
            record.rank = rank_in(items, case.target)
    return record


def converse(pipeline: Recommender, case: Case, config: RunConfig, simulator: object) -> Record:
    """Up to `max_turns` turns; a hit is the target in the agent's list."""
    record = Record(
        pipeline=pipeline.name, user_idx=case.user_idx, user_id=case.user_id, target=case.target
    )
    with recorded(record):
        session = pipeline.session()  # type: ignore[attr-defined]
        session.set_user(None)
        session.ctx.user_id = case.user_id
        options = AskOptions(history=list(case.history))
        shown: list[str] = []
        title = env_title(session, case.target)
        for turn in range(config.max_turns):
            message, leaked = redact(simulator.message(case, turn, shown), title)  # type: ignore[attr-defined]
            record.errors["title_leaks"] = record.errors.get("title_leaks", 0) + int(leaked)
            ranked = session.ask(message, k=CONVERSATION_K, options=options)
            tally_turn(record, session.last_turn, ranked)
            shown = [it.item_id for it in ranked.items]
            record.turns = turn + 1
            if case.target in shown:
                record.hit_turn = turn + 1
                record.rank = float(shown.index(case.target) + 1)
                break
        record.items = shown
        record.llm_calls += getattr(simulator, "calls", 0)
    return record


def answer_dialogue(
    pipeline: Recommender, case: DialogueCase, config: RunConfig, reader: RuleReader
) -> Record:
    """One dialogue case: the pipeline answers the next turn; `items` is its top-k list."""
    first = (case.new_gold or case.gold_ids or [""])[0]
    record = Record(
        pipeline=pipeline.name,
        user_idx=case.index,
        user_id=case.case_id,
        target=first,
        gold=case.gold_ids,
        gold_new=case.new_gold,
    )
    with recorded(record):
        if isinstance(pipeline, SessionRecommender):
            session = pipeline.session()
            session.set_user(None)
            message = session.replay(case.messages)
            ranked = session.ask(message, k=config.k)
            tally_turn(record, session.last_turn, ranked)
            items = [it.item_id for it in ranked.items]
            record.model_gold = [
                it.item_id
                for it in ranked.items
                if it.item_id in case.new_gold and only_suggested(it)
            ]
            record.explanations = len(items)
            record.unfaithful_explanations = ranked.repairs.get("unfaithful_explanation", 0)
            record.model = ranked.model
        elif isinstance(pipeline, TitlesRecommender):
            rec = pipeline.recommend_dialogue(case.messages, config.k, set(case.named))
            items = rec.item_ids
            _from(rec, record)
        else:
            history = liked_history(reader, case)
            named = set(case.named)
            rec = pipeline.recommend(history, config.k + len(named))
            items = [i for i in rec.item_ids if i not in named][: config.k]
            _from(rec, record)
        record.items = items
        record.rank = first_rank(items, record.gold_new)
    return record


def answer_tag(space: TextSpace, case: TagCase, config: RunConfig) -> Record:
    """One tag: the space ranks its items for the tag; `gold` is what people tagged."""
    record = Record(
        pipeline=space.name,
        user_idx=case.index,
        user_id=case.tag,
        target=case.items[0],
        gold=case.items,
    )
    with recorded(record):
        record.items = space.recommend(case.tag, config.k).item_ids
        record.rank = first_rank(record.items, case.items)
    return record


def answer_rating(name: str, predictor: Predictor, case: RatingCase, env: EvalEnv) -> Record:
    """One held-out rating: what the predictor says against what the user gave."""
    record = Record(
        pipeline=name,
        user_idx=case.user_idx,
        user_id=case.user_id,
        target=case.item,
        rating=case.rating,
    )
    with recorded(record):
        got = predictor(case, env.dataset)
        record.prediction = got.stars
        record.llm_calls, record.model = got.llm_calls, got.model
        record.input_tokens, record.output_tokens = got.input_tokens, got.output_tokens
        if not got.parsed:
            record.errors["unparsed"] = 1
    return record


def only_suggested(item: RankedItem) -> bool:
    """The item was found by the model's own titles and by no other recall (the sequence
    model scoring every candidate at the end does not count)."""
    kinds = {
        ev.kind
        for ev in item.evidence
        if not (ev.kind == "sequential" and ev.catalog_rank is None)
        and ev.kind not in ("similar_to_disliked", "filter")
    }
    return kinds == {"suggested"}


def dialogue_cases(config: RunConfig, env: EvalEnv) -> list[DialogueCase]:
    """The run's cases: all in the file, or `users` of them drawn with the run's seed."""
    if not config.cases:
        raise ConfigError("the dialogues protocol needs --cases FILE.jsonl")
    return sample_cases(load_cases(Path(config.cases), env.dataset), config)


def sample_cases(cases: list[C], config: RunConfig) -> list[C]:
    """All of `cases`, or `config.users` of them drawn with the run's seed, in file order."""
    if config.users is None or config.users >= len(cases):
        return cases
    rng = np.random.default_rng(config.seed)
    keep = np.sort(rng.choice(len(cases), size=config.users, replace=False))
    return [cases[int(i)] for i in keep]


def env_title(session: object, item_id: str) -> str:
    return session.dataset.catalog[item_id].title  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Unit:
    """One pipeline's share of a run (in the conversation protocol, one simulator variant)."""

    pipeline: str
    variant: str | None = None

    @property
    def label(self) -> str:
        """What its records are called."""
        return f"{self.pipeline}[{self.variant}]" if self.variant else self.pipeline


def case_key(case: Any) -> int:
    """The number a case's records carry as `user_idx`: the user, or the case's line."""
    return case.user_idx if isinstance(case, Case | RatingCase) else int(case.index)


def plan(config: RunConfig, env: EvalEnv) -> list[tuple[Unit, list[Any]]]:
    """Every unit of the run with every case it answers (recorded or not), in run order."""
    cases: list[Any]
    if config.protocol == "dialogues":
        cases = dialogue_cases(config, env)
    elif config.protocol == "requests":
        path = Path(config.cases) if config.cases else None
        cases = sample_cases(load_request_cases(path, env.dataset), config)
    elif config.protocol == "tags":
        if not config.cases:
            raise ConfigError("the tags protocol needs --cases path/to/tags.csv (MovieLens)")
        universe = {it.item_id for it in universe_of(env.dataset)}
        cases = sample_cases(tag_cases(Path(config.cases), env.dataset, universe), config)
    elif config.protocol == "ratings":
        users = 200 if config.users is None else config.users
        cases = rating_cases(env.dataset, config.split, users, config.seed)
    else:
        cases = build_cases(config, env)
    variants: tuple[str | None, ...] = VARIANTS if config.protocol == "conversation" else (None,)
    return [(Unit(p, v), cases) for p in config.pipelines for v in variants]


class CaseRunner:
    """Answers (unit, case) pairs against one `EvalEnv`: each unit's pipeline is built once
    (per process), and may be called from several threads."""

    def __init__(self, config: RunConfig, env: EvalEnv) -> None:
        self.config = config
        self.env = env
        self._pipelines: dict[str, Recommender] = {}
        self._lock = threading.Lock()
        self._reader: RuleReader | None = None

    def pipeline(self, unit: Unit) -> Any:
        with self._lock:
            if unit.label not in self._pipelines:
                pipeline: Any
                if self.config.protocol == "tags":
                    env = self.env
                    pipeline = make_space(
                        unit.pipeline, env.dataset, env.text_embedder, env.workspace
                    )
                elif self.config.protocol == "ratings":
                    pipeline = make_predictor(unit.pipeline, self.env)
                else:
                    pipeline = self.env.pipeline(unit.pipeline)
                if self.config.protocol == "requests" and not isinstance(
                    pipeline, SessionRecommender
                ):
                    raise ConfigError(
                        f"the requests protocol evaluates the agent, not {unit.pipeline!r}"
                    )
                self._pipelines[unit.label] = pipeline
            return self._pipelines[unit.label]

    def reader(self) -> RuleReader:
        with self._lock:
            if self._reader is None:
                ds = self.env.dataset
                self._reader = RuleReader(ds.catalog, ds.titles, ds.genres)
            return self._reader

    def __call__(self, unit: Unit, case: Any) -> Record:
        pipeline, config = self.pipeline(unit), self.config
        if config.protocol == "tags":
            return answer_tag(pipeline, case, config)
        if config.protocol == "ratings":
            return answer_rating(unit.pipeline, pipeline, case, self.env)
        if config.protocol == "dialogues":
            record = answer_dialogue(pipeline, case, config, self.reader())
        elif config.protocol == "requests":
            assert isinstance(pipeline, SessionRecommender)
            record = answer_request(pipeline, case, config, pipeline.name)
        elif unit.variant is not None:
            record = converse(pipeline, case, config, self._simulator(unit.variant == "attrs"))
        else:
            record = evaluate_case(pipeline, case, config)
        record.pipeline = unit.label
        return record

    def _simulator(self, with_attrs: bool) -> object:
        env = self.env
        domain = env.settings.agent.domain
        if self.config.simulator == "llm":
            return LLMSimulator(
                env.llm, env.dataset.catalog, env.registry, env.settings.llm, with_attrs, domain
            )
        return RulesSimulator(env.dataset.catalog, with_attrs, domain)


class Engine(Protocol):
    """Computes a unit's records, in any order (threads here, Ray workers elsewhere)."""

    def records(self, unit: Unit, cases: list[Any]) -> Iterator[Record]: ...


class ThreadEngine:
    """This process: one case at a time, or `workers` threads."""

    def __init__(self, runner: CaseRunner, workers: int) -> None:
        self.runner = runner
        self.workers = workers

    def records(self, unit: Unit, cases: list[Any]) -> Iterator[Record]:
        self.runner.pipeline(unit)  # a pipeline that cannot be built stops the run here
        if self.workers <= 1:
            for case in cases:
                yield self.runner(unit, case)
            return
        with ThreadPoolExecutor(self.workers) as pool:
            yield from pool.map(lambda case: self.runner(unit, case), cases)


def run(
    config: RunConfig,
    env: EvalEnv,
    run_dir: RunDir,
    reporter: Reporter,
    on_record: Callable[[Record], None] | None = None,
    ray: RayOptions | None = None,
) -> list[Record]:
    """Evaluate every pipeline on every case not yet recorded in `run_dir`: in this process
    (`config.workers` threads), or over Ray workers when `ray` is given. Records are
    appended as they arrive; `run_dir.records()` gives them in the run's order."""
    run_dir.repair()
    done = {r.key for r in run_dir.records()}
    work = [
        (unit, todo)
        for unit, cases in plan(config, env)
        if (todo := [c for c in cases if (unit.label, case_key(c)) not in done])
    ]
    if not work:
        return run_dir.records()
    engine: AbstractContextManager[Engine]
    if ray is None:
        engine = nullcontext(ThreadEngine(CaseRunner(config, env), config.workers))
    else:
        from recagent.evals.ray_runner import RayEngine

        engine = RayEngine(ray, config, env, [unit for unit, _ in work], reporter)
    with engine as running:
        for unit, todo in work:
            with reporter.stage(f"{unit.label} ({config.protocol})", total=len(todo)) as advance:
                for record in running.records(unit, todo):
                    run_dir.append(record)
                    if on_record:
                        on_record(record)
                    advance(1)
    return run_dir.records()


__all__ = [
    "CaseRunner",
    "Unit",
    "answer_dialogue",
    "answer_rating",
    "answer_tag",
    "build_cases",
    "case_key",
    "converse",
    "dialogue_cases",
    "evaluate_case",
    "list_errors",
    "plan",
    "rank_in",
    "run",
]
