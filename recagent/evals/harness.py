"""Runs pipelines over a protocol's users, one record per (pipeline, user), appended as it
goes. A pipeline that fails on a user is recorded as that user's failure and the run
continues; `resume` skips every (pipeline, user) already recorded."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from recagent.evals.env import EvalEnv
from recagent.evals.protocols import Case, base_cases, random_candidates, shuffled
from recagent.evals.recommender import Recommendation, Recommender
from recagent.evals.runs import Record, RunConfig, RunDir
from recagent.evals.simulator import LLMSimulator, RulesSimulator, redact
from recagent.progress import Reporter

CONVERSATION_K = 10
VARIANTS = ("attrs", "no-attrs")  # conversation: simulator knows / does not know attributes


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
    started = time.perf_counter()
    try:
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
    except Exception as exc:
        record.failure = f"{type(exc).__name__}: {exc}"[:500]
    record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return record


def converse(pipeline: Recommender, case: Case, config: RunConfig, simulator: object) -> Record:
    """Up to `max_turns` turns; a hit is the target in the agent's list."""
    record = Record(
        pipeline=pipeline.name, user_idx=case.user_idx, user_id=case.user_id, target=case.target
    )
    started = time.perf_counter()
    try:
        session = pipeline.session()  # type: ignore[attr-defined]
        session.set_user(None)
        session.ctx.user_id = case.user_id
        session.ctx.history = list(case.history)
        shown: list[str] = []
        title = env_title(session, case.target)
        for turn in range(config.max_turns):
            message, leaked = redact(simulator.message(case, turn, shown), title)  # type: ignore[attr-defined]
            record.errors["title_leaks"] = record.errors.get("title_leaks", 0) + int(leaked)
            ranked = session.ask(message, k=CONVERSATION_K)
            turn_log = session.last_turn
            if turn_log:
                record.llm_calls += turn_log.llm_calls
                record.input_tokens += turn_log.input_tokens
                record.output_tokens += turn_log.output_tokens
                record.tool_calls += len(turn_log.tool_calls)
                record.tool_failures += sum(not c["ok"] for c in turn_log.tool_calls)
            shown = [it.item_id for it in ranked.items]
            record.turns = turn + 1
            if case.target in shown:
                record.hit_turn = turn + 1
                record.rank = float(shown.index(case.target) + 1)
                break
        record.items = shown
        record.llm_calls += getattr(simulator, "calls", 0)
    except Exception as exc:
        record.failure = f"{type(exc).__name__}: {exc}"[:500]
    record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return record


def env_title(session: object, item_id: str) -> str:
    return session.dataset.catalog[item_id].title  # type: ignore[attr-defined]


def run(
    config: RunConfig,
    env: EvalEnv,
    run_dir: RunDir,
    reporter: Reporter,
    on_record: Callable[[Record], None] | None = None,
) -> list[Record]:
    """Evaluate every pipeline on every case not yet recorded in `run_dir`."""
    run_dir.repair()
    done = {r.key for r in run_dir.records()}
    cases = build_cases(config, env)
    units = [(p, None) for p in config.pipelines]
    if config.protocol == "conversation":
        units = [(p, v) for p in config.pipelines for v in VARIANTS]
    for pipeline_name, variant in units:
        label = f"{pipeline_name}[{variant}]" if variant else pipeline_name
        todo = [c for c in cases if (label, c.user_idx) not in done]
        if not todo:
            continue
        pipeline = env.pipeline(pipeline_name)
        with reporter.stage(f"{label} ({config.protocol})", total=len(todo)) as advance:
            work = _worker(pipeline, label, variant, config, env)

            def finish(record: Record) -> None:
                run_dir.append(record)
                if on_record:
                    on_record(record)
                advance(1)

            if config.workers > 1:
                with ThreadPoolExecutor(config.workers) as pool:
                    for record in pool.map(work, todo):
                        finish(record)
            else:
                for case in todo:
                    finish(work(case))
    return run_dir.records()


def _worker(
    pipeline: Recommender, label: str, variant: str | None, config: RunConfig, env: EvalEnv
) -> Callable[[Case], Record]:
    if variant is None:

        def one(case: Case) -> Record:
            record = evaluate_case(pipeline, case, config)
            record.pipeline = label
            return record

        return one

    def talk(case: Case) -> Record:
        with_attrs = variant == "attrs"
        sim: object
        if config.simulator == "llm":
            sim = LLMSimulator(
                env.llm,
                env.dataset.catalog,
                env.registry,
                env.settings.llm,
                with_attrs,
                env.settings.agent.domain,
            )
        else:
            sim = RulesSimulator(env.dataset.catalog, with_attrs, env.settings.agent.domain)
        record = converse(pipeline, case, config, sim)
        record.pipeline = label
        return record

    return talk


__all__ = ["build_cases", "converse", "evaluate_case", "list_errors", "rank_in", "run"]
