"""Asking an LLM for each item's knowledge (KAR-lite), concurrently, resumably.

Only the item's title, year and categories reach the prompt (`item_line`): never its free
text, which on MovieLens holds users' tags, nor its other columns. Each answer is stored as it
arrives (`KnowledgeStore`); the plan skips every item whose exact prompt was answered before,
so a rerun after Ctrl-C or a crash asks only for what is missing, and a changed prompt or item
asks only for what changed. A request that still fails after the client's retries is counted
and left for the next run; several in a row stop the build with what it kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel

from recagent.agent.llm import LLMUnavailable, complete
from recagent.config import LLMConfig
from recagent.data.catalog import Item
from recagent.errors import RecagentError
from recagent.knowledge import PROMPT
from recagent.knowledge.attach import item_line
from recagent.knowledge.parse import read_knowledge
from recagent.knowledge.store import Answer, KnowledgeStore, answer_key, text_hash
from recagent.progress import Reporter, SilentReporter
from recagent.prompts.registry import PromptRegistry, RenderedPrompt

FAILURES_IN_A_ROW = 5
"""Consecutive failed requests that stop a build (the server is down, not one item odd)."""


class BuildStopped(RecagentError):
    """The LLM kept failing; what was answered before is kept."""


@dataclass(frozen=True)
class Job:
    item: Item
    prompt: RenderedPrompt
    key: str


@dataclass
class BuildReport:
    """What a build did: answers by status, requests that failed, tokens and time."""

    asked: int = 0
    cached: int = 0
    ok: int = 0
    unknown: int = 0
    unparsed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add(self, answer: Answer) -> None:
        setattr(self, answer.status, getattr(self, answer.status) + 1)
        self.input_tokens += answer.input_tokens
        self.output_tokens += answer.output_tokens

    @property
    def answered(self) -> int:
        return self.ok + self.unknown + self.unparsed


def template_aspects(registry: PromptRegistry) -> dict[str, str]:
    """The aspects the knowledge prompt in effect names: name -> what it asks for."""
    aspects = registry.get(PROMPT).variables.get("aspects")
    default = aspects.default if aspects is not None else None
    if isinstance(default, dict):
        return {str(k): str(v) for k, v in default.items()}
    if isinstance(default, list):
        return {str(a): "" for a in default}
    return {}


def reread_answers(store: KnowledgeStore, aspects: dict[str, str]) -> int:
    """Read every stored answer again (no request); returns how many read differently."""
    changed = 0
    for answer in store.answers():
        reading = read_knowledge(answer.raw, aspects)
        if (reading.status, reading.aspects) != (answer.status, answer.aspects):
            store.put(
                answer.model_copy(update={"status": reading.status, "aspects": reading.aspects})
            )
            changed += 1
    return changed


class KnowledgeBuilder:
    def __init__(
        self,
        model: BaseChatModel,
        model_name: str,
        registry: PromptRegistry,
        cfg: LLMConfig,
        store: KnowledgeStore,
        domain: str = "movies",
    ) -> None:
        self.model = model
        self.model_name = model_name
        self.registry = registry
        self.cfg = cfg
        self.store = store
        self.domain = domain
        self.aspects = template_aspects(registry)

    def prompt(self, item: Item) -> RenderedPrompt:
        return self.registry.render(PROMPT, domain=self.domain, item=item_line(item))

    def plan(self, items: Sequence[Item], retry: bool = False) -> tuple[list[Job], int]:
        """The items still to ask (each with its prompt), and how many were answered already.
        With `retry`, items whose stored answer is `unknown` or `unparsed` are asked again."""
        stored = self.store.keys()
        redo = {a.key for a in self.store.answers() if a.status != "ok"} if retry else set[str]()
        todo, cached = [], 0
        for item in items:
            prompt = self.prompt(item)
            key = answer_key(prompt.hash, prompt.text)
            if key in stored and key not in redo:
                cached += 1
            else:
                todo.append(Job(item, prompt, key))
        return todo, cached

    def ask(self, job: Job) -> Answer:
        started = time.perf_counter()
        text, reply = complete(self.model, job.prompt, self.cfg)
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        reading = read_knowledge(text, self.aspects)
        return Answer(
            key=job.key,
            item_id=job.item.item_id,
            item_hash=text_hash(item_line(job.item)),
            prompt_hash=job.prompt.hash,
            model=self.model_name,
            status=reading.status,
            aspects=reading.aspects,
            raw=text,
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            seconds=round(time.perf_counter() - started, 3),
        )

    def run(
        self,
        jobs: Sequence[Job],
        reporter: Reporter | None = None,
        workers: int | None = None,
        on_answer: Callable[[Answer], None] | None = None,
    ) -> BuildReport:
        """Ask every job, `workers` (default: `[llm] concurrency`) at a time; each answer is
        stored before the next is counted. Ctrl-C stops asking and keeps what was stored."""
        report = BuildReport(asked=len(jobs))
        started = time.perf_counter()
        in_a_row = 0
        stop = threading.Event()
        reporter = reporter or SilentReporter()
        pool = ThreadPoolExecutor(max(1, workers or self.cfg.concurrency))
        pending: dict[Future[Answer], Job] = {}
        queue = list(reversed(jobs))
        interrupted = False
        try:
            with reporter.stage("item knowledge", total=len(jobs)) as advance:
                while queue or pending:
                    while queue and len(pending) < pool._max_workers and not stop.is_set():
                        job = queue.pop()
                        pending[pool.submit(self.ask, job)] = job
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = pending.pop(future)
                        try:
                            answer = future.result()
                        except LLMUnavailable as exc:
                            report.failed += 1
                            in_a_row += 1
                            report.errors.append(f"{job.item.item_id}: {exc}")
                            if in_a_row >= FAILURES_IN_A_ROW:
                                stop.set()
                            advance(1)
                            continue
                        in_a_row = 0
                        self.store.put(answer)
                        report.add(answer)
                        if on_answer:
                            on_answer(answer)
                        advance(1, ok=report.ok, tokens=report.output_tokens)
        except KeyboardInterrupt:
            interrupted = True  # requests in flight are dropped; stored answers stay
            raise
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
            report.seconds = round(time.perf_counter() - started, 3)
        if stop.is_set():
            raise BuildStopped(
                f"the LLM failed {FAILURES_IN_A_ROW} requests in a row (last: "
                f"{report.errors[-1].split(': ', 1)[-1]}); {report.answered} answers of this run "
                "are kept: run the same command again to go on"
            )
        return report


__all__ = [
    "FAILURES_IN_A_ROW",
    "PROMPT",
    "BuildReport",
    "BuildStopped",
    "Job",
    "KnowledgeBuilder",
    "reread_answers",
    "template_aspects",
]
