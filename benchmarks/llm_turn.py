"""LLM-mode turn latency on real dialogues, with and without the server's prompt cache.

    eval "$(../shared/tools/local-llm env)"
    flock /tmp/recagent-bench.lock python benchmarks/llm_turn.py --cases 12
    flock /tmp/recagent-bench.lock python benchmarks/llm_turn.py --cases 12 --no-prefix-cache

Each case of redial-dev (a seeded sample) is replayed into a fresh session on the
ml-latest-small catalog and its next turn asked in LLM mode: one `read_request` call and one
`final_answer` call that share their prompt prefix. `--no-prefix-cache` puts a random line at
the top of every call's system prompt, so a server that reuses the longest common prefix of
consecutive requests (llama.cpp does) has to read the whole prompt each time. Target (issue
10): turn p50 <= 60 s on 2 cores with the local qwen2.5-1.5b.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import common
from langchain_core.messages import SystemMessage

from recagent.app import build_session, load_services
from recagent.config import load_settings
from recagent.data.prepare import PrepareConfig, prepare
from recagent.evals.dialogues import load_cases
from recagent.progress import RichReporter
from recagent.workspace import Workspace

DATASET = "ml-latest-small"


class _Nonce:
    """Wraps a chat model: every call's system prompt starts with a random line."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def bind_tools(self, *args: Any, **kwargs: Any) -> Any:
        bound = self.inner.bind_tools(*args, **kwargs)

        class Bound:
            def invoke(self, messages: list[Any], **kw: Any) -> Any:
                first, *rest = messages
                salted = SystemMessage(content=f"[{secrets.token_hex(8)}]\n{first.content}")
                return bound.invoke([salted, *rest], **kw)

        return Bound()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12, help="How many dialogue cases.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-prefix-cache", action="store_true")
    args = parser.parse_args()
    home = common.HOME
    ws = Workspace(home)
    settings = load_settings(home=home)
    settings.llm.timeout_s = 900
    if DATASET not in ws.dataset_names():
        prepare(PrepareConfig(dataset=DATASET, source=common.SHARED / DATASET), ws)
    services = load_services(ws, settings, DATASET, RichReporter(), build_missing=True)
    session = build_session(services, settings, ws, None)
    if session.agent is None:
        raise SystemExit('no LLM configured: eval "$(../shared/tools/local-llm env)" first')
    if args.no_prefix_cache:
        session.agent.model = _Nonce(session.agent.model)  # type: ignore[assignment]
    cases = load_cases(common.SHARED / "redial-dev" / "cases.jsonl", services.dataset)
    random.Random(args.seed).shuffle(cases)
    turns = []
    for case in cases[: args.cases]:
        session.set_user(None)
        message = session.replay(case.messages)
        started = time.perf_counter()
        ranked = session.ask(message)
        seconds = time.perf_counter() - started
        record = session.last_turn
        turns.append(
            {
                "case": case.case_id,
                "seconds": round(seconds, 2),
                "llm_calls": record.llm_calls if record else 0,
                "input_tokens": record.input_tokens if record else 0,
                "output_tokens": record.output_tokens if record else 0,
                "mode": ranked.mode,
            }
        )
        print(turns[-1], flush=True)
    secs = [t["seconds"] for t in turns]
    result = {
        "machine": common.machine(),
        "model": session.model_name,
        "prefix_cache": not args.no_prefix_cache,
        "cases": len(turns),
        "turn_p50_s": statistics.median(secs),
        "turn_p90_s": sorted(secs)[int(0.9 * (len(secs) - 1))],
        "calls_per_turn": statistics.mean(t["llm_calls"] for t in turns),
        "input_tokens_per_turn": statistics.mean(t["input_tokens"] for t in turns),
        "output_tokens_per_turn": statistics.mean(t["output_tokens"] for t in turns),
        "turns": turns,
    }
    name = "llm_turn" + ("_no_prefix_cache" if args.no_prefix_cache else "")
    common.write_result(name, result)
    print({k: v for k, v in result.items() if k not in ("turns", "machine")})


if __name__ == "__main__":
    main()
