"""Evaluation cases fanned out over Ray (`recagent eval run --ray`).

A pool of Ray actors, each building the run's `EvalEnv` (dataset, models, index, LLM client)
once with the caller's `make_env` and answering the cases sent to it with the same
`CaseRunner` a serial run uses; the records come back to the driver, which appends them to the
run as they arrive. Offline pipelines keep one case per worker in flight; the LLM pipelines
keep `[llm] concurrency` cases in flight over all workers (threads inside each actor), so the
LLM server sees at most that many requests at once. Every worker reads and writes the one
SQLite request cache of the workspace.

Ray is an optional dependency (the `ray` extra), imported only when a run asks for it.
Without `address` a local Ray is started (no dashboard, no usage reporting, worker logs not
copied to the terminal) and stopped at the end; with one, the run joins that cluster, whose
machines must see the workspace at the same path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from types import ModuleType, TracebackType
from typing import Any

from recagent.errors import ConfigError, RecagentError
from recagent.evals.env import EvalEnv
from recagent.evals.harness import CaseRunner, Unit
from recagent.evals.pipelines import LLM_PIPELINES
from recagent.evals.runs import Record, RunConfig
from recagent.progress import Reporter

log = logging.getLogger(__name__)
MISSING_RAY = (
    "--ray needs Ray, which is not installed: install recagent with its ray extra "
    "(pip install 'recagent[ray]', or pip install -e '.[ray]' in a checkout)"
)
OBJECT_STORE_BYTES = 256 * 1024**2  # cases and records are small; nothing large travels
FORWARDED_ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY")  # what resolve_llm reads on a worker


@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray. `make_env` must pickle (a module-level function, or a
    `functools.partial` of one): every worker calls it once to build its own `EvalEnv`."""

    make_env: Callable[[], EvalEnv]
    address: str | None = None
    workers: int | None = None  # default: every CPU of the local machine or the cluster


def import_ray() -> ModuleType:
    """The `ray` module, or a `ConfigError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(MISSING_RAY) from None
    return ray


class CaseWorker:
    """One Ray actor: builds its `EvalEnv` once, then answers the cases it is sent."""

    def __init__(self, make_env: Callable[[], EvalEnv], config: RunConfig, workers: int) -> None:
        self.problem: RecagentError | None = None
        try:
            env = make_env()
            env.llm_rpm = config.llm_rpm / workers  # the run's rate limit, shared by workers
            env.fingerprints(config.pipelines)  # loads the models, index and LLM client now
        except RecagentError as exc:  # e.g. this machine does not see the workspace
            self.problem = exc
            return
        self.env = env
        self.runner = CaseRunner(config, env)

    def ready(self) -> int:
        """The worker's process id, once it has loaded everything (or the user's mistake
        that stopped it, raised to the driver as it would be in one process)."""
        if self.problem is not None:
            raise self.problem
        return os.getpid()

    def record(self, unit: Unit, case: Any) -> Record:
        return self.runner(unit, case)

    def llm_stats(self) -> dict[str, int]:
        return self.env.llm.stats if "llm" in self.env.__dict__ else {}


class RayEngine:
    """The harness's engine on Ray (a context manager: starts the workers, stops them)."""

    def __init__(
        self,
        options: RayOptions,
        config: RunConfig,
        env: EvalEnv,
        units: list[Unit],
        reporter: Reporter,
    ) -> None:
        self.options = options
        self.config = config
        self.env = env
        self.units = units
        self.reporter = reporter
        self.concurrency = env.settings.llm.concurrency
        self.actors: list[Any] = []
        self.slots = 1  # cases each worker runs at once (threads), set when they start
        self._ray = import_ray()
        self._started = False

    def uses_llm(self, unit: Unit) -> bool:
        return unit.pipeline in LLM_PIPELINES or (
            unit.variant is not None and self.config.simulator == "llm"
        )

    def __enter__(self) -> RayEngine:
        ray = self._ray
        if not ray.is_initialized():
            self._start()
        try:
            self._start_workers()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and "llm" in self.env.__dict__:
                stats = self._ray.get([a.llm_stats.remote() for a in self.actors])
                for s in stats:
                    self.env.llm.add_stats(s)
        finally:
            self._stop()

    def _start(self) -> None:
        ray, options = self._ray, self.options
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        common: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        try:
            if options.address:
                env_vars = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
                ray.init(address=options.address, runtime_env={"env_vars": env_vars}, **common)
            else:
                ray.init(
                    address="local",  # a new instance, never another one running here
                    num_cpus=options.workers or os.cpu_count() or 1,
                    object_store_memory=OBJECT_STORE_BYTES,
                    **common,
                )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at {options.address}" if options.address else "local Ray"
            raise ConfigError(f"could not start {where}: {exc}") from None
        self._started = True

    def _start_workers(self) -> None:
        ray = self._ray
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(self.options.workers or cpus, cpus))
        if self.options.workers and self.options.workers > cpus:
            log.warning("Ray has %d CPUs: %d workers, not %d", cpus, n, self.options.workers)
        self.slots = -(-self.concurrency // n) if any(map(self.uses_llm, self.units)) else 1
        actor = ray.remote(CaseWorker).options(num_cpus=1, max_concurrency=self.slots)
        with self.reporter.stage(f"starting {n} Ray workers", total=n) as advance:
            self.actors = [actor.remote(self.options.make_env, self.config, n) for _ in range(n)]
            pending = [a.ready.remote() for a in self.actors]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                self._get(partial(ray.get, done[0]))
                advance(1)

    def records(self, unit: Unit, cases: list[Any]) -> Iterator[Record]:
        """The unit's records as the workers finish them: one case per worker in flight, or
        `[llm] concurrency` over all workers for an LLM pipeline."""
        from ray.util import ActorPool

        n = len(self.actors)
        in_flight = self.concurrency if self.uses_llm(unit) else n
        pool = ActorPool([self.actors[i % n] for i in range(in_flight)])
        for case in cases:
            pool.submit(lambda actor, c: actor.record.remote(unit, c), case)
        while pool.has_next():
            yield self._get(pool.get_next_unordered)

    def _get(self, fetch: Callable[[], Any]) -> Any:
        """A result; a worker's failure as the error a serial run would raise, or one that
        says the run can be resumed."""
        exceptions = self._ray.exceptions
        try:
            return fetch()
        except exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            if isinstance(cause, RecagentError):
                raise cause from None
            raise
        except exceptions.RayActorError as exc:
            raise RecagentError(
                f"a Ray worker failed ({_first_line(exc)}); the records so far are kept: "
                f"`recagent eval resume {self.config.run_id}`"
            ) from None

    def _stop(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


__all__ = ["MISSING_RAY", "CaseWorker", "RayEngine", "RayOptions", "import_ray"]
