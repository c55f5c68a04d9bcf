"""`recagent serve` under load, on ML-100k with the offline planner, from an async client on
the same machine (the server is its own process, as in use).

    python benchmarks/serve_load.py load [--sessions 50 --messages 5 --think 0 --ramp 0]
                                         [--workers 1 2]
    python benchmarks/serve_load.py isolation [--llm-sleep 5]

load: one conversation alone (its p95 is the yardstick), then N conversations at once, each
sending M messages one after another (after `--think` seconds of "reading" each answer;
`--ramp S`: each starts at a random moment within S seconds, as people do, instead of all
in the same instant): errors, p50/p95 latency per message, throughput. Target (issue 12):
zero errors and a p95 under load no worse than 10x the single conversation's.
`--workers 1 2` runs the whole load once per count, each on a fresh `recagent serve
--workers N` (after all its workers serve and each has answered a warm-up), and compares
them in one record (issue 21: several server processes behind one port).

isolation: the server with an LLM that is a local OpenAI-compatible fake taking
`--llm-sleep` seconds per call; one conversation waits on it while a planner conversation
(`offline: true`) chats: how much later its answers come than alone. Target: < 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import common

MESSAGES = [
    "dark sci-fi from the 80s",
    "something like Toy Story but no animation",
    "a romantic comedy from the 90s",
    "no horror",
    "older ones",
    "more like the second one",
    "5 movies like Heat",
    "classic westerns",
    "a feel-good comedy",
    "more",
]
URL = re.compile(r"serving on (http://127\.0\.0\.1:\d+/)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p95_ms": round(percentile(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


class Server:
    """`recagent serve --port 0` as a child process (niced like the rest of this script)."""

    def __init__(
        self, home: Path, *args: str, env: dict[str, str] | None = None, workers: int = 1
    ) -> None:
        command = [sys.executable, "-m", "recagent", "--home", str(home), "serve", "--port", "0"]
        if workers > 1:
            command += ["--workers", str(workers)]
        self.proc = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.workers = workers
        self.url = ""

    def __enter__(self) -> Server:
        """Once it serves: its URL printed, and with workers, all of them serving."""
        assert self.proc.stdout is not None
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            if found := URL.search(line):
                self.url = found.group(1).rstrip("/")
            if self.url and (self.workers == 1 or "workers are serving" in line):
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return self
        raise SystemExit("recagent serve did not start:\n" + "".join(seen))

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def conversation(
    client: httpx.AsyncClient,
    rng: random.Random,
    messages: int,
    think: float,
    errors: list[str],
    empty: list[str],
    body: dict[str, Any] | None = None,
    start_after: float = 0.0,
) -> list[float]:
    await asyncio.sleep(start_after)
    user = rng.choice([None, *map(str, range(1, 944))])
    created = await client.post("/v1/sessions", json=body or {"user_id": user})
    if created.status_code != 201:
        errors.append(f"create: {created.status_code} {created.text[:200]}")
        return []
    sid = created.json()["session_id"]
    latencies = []
    for _ in range(messages):
        text = rng.choice(MESSAGES)
        started = time.perf_counter()
        try:
            response = await client.post(f"/v1/sessions/{sid}/messages", json={"text": text})
            if response.status_code != 200 or "items" not in response.json():
                errors.append(f"{text!r}: {response.status_code} {response.text[:200]}")
            elif not response.json()["items"]:
                empty.append(text)  # an answer all the same ("classic westerns", then "more")
        except httpx.HTTPError as exc:
            errors.append(f"{text!r}: {type(exc).__name__} {exc}")
        latencies.append(time.perf_counter() - started)
        if think:
            await asyncio.sleep(think)
    return latencies


async def run_load(
    url: str,
    sessions: int,
    messages: int,
    think: float,
    ramp: float,
    seed: int,
    workers: int = 1,
) -> dict:
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=sessions + 5)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        errors: list[str] = []
        empty: list[str] = []
        warm_up = 1 if workers == 1 else 4 * workers  # at once: every worker gets some
        await asyncio.gather(
            *(conversation(client, rng, 3, 0, errors, empty) for _ in range(warm_up))
        )
        single = await conversation(client, rng, 20, 0, errors, empty)
        started = time.perf_counter()
        starts = [rng.uniform(0, ramp) for _ in range(sessions)]
        results = await asyncio.gather(
            *(
                conversation(client, rng, messages, think, errors, empty, start_after=s)
                for s in starts
            )
        )
        wall = time.perf_counter() - started
    loaded = [x for r in results for x in r]
    out = {
        "workers": workers,
        "single": ms(single),
        "load": ms(loaded),
        "sessions": sessions,
        "messages": messages,
        "think_s": think,
        "ramp_s": ramp,
        "wall_s": round(wall, 1),
        "messages_per_s": round(len(loaded) / wall, 2),
        "errors": len(errors),
        "error_examples": errors[:5],
        "empty_answers": len(empty),
    }
    out["p95_ratio"] = round(out["load"]["p95_ms"] / out["single"]["p95_ms"], 2)
    return out


# --- a slow OpenAI-compatible model ------------------------------------------------------

CANDIDATE = re.compile(r"^- (\S+): ", re.M)


def slow_llm(sleep_s: float) -> ThreadingHTTPServer:
    """Answers every chat call after `sleep_s` seconds: a valid reading, then a valid pick."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _json(self, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, call: dict) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            base = {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "slow-fake",
            }
            deltas = [
                ({"role": "assistant", "content": "", "tool_calls": [{"index": 0, **call}]}, None),
                ({}, "tool_calls"),
            ]
            for delta, finish in deltas:
                chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

        def do_GET(self) -> None:
            self._json({"object": "list", "data": [{"id": "slow-fake", "object": "model"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(sleep_s)
            tool = body["tool_choice"]["function"]["name"]
            if tool == "read_request":
                args: dict[str, Any] = {}
            else:
                ids = CANDIDATE.findall(body["messages"][-1]["content"])[:10]
                args = {"items": [{"item_id": i, "explanation": ""} for i in ids]}
            function = {"name": tool, "arguments": json.dumps(args)}
            call = {"id": "c1", "type": "function", "function": function}
            if body.get("stream"):  # the server streams the model's tokens to its pages
                self._stream(call)
                return
            message = {"role": "assistant", "content": "", "tool_calls": [call]}
            self._json(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "slow-fake",
                    "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def run_isolation(url: str, sleep_s: float, rounds: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        fast = (await client.post("/v1/sessions", json={"offline": True})).json()["session_id"]
        slow = (await client.post("/v1/sessions", json={})).json()["session_id"]

        async def planner_turns(n: int) -> list[float]:
            out = []
            for i in range(n):
                started = time.perf_counter()
                response = await client.post(
                    f"/v1/sessions/{fast}/messages", json={"text": MESSAGES[i % len(MESSAGES)]}
                )
                assert response.status_code == 200 and response.json()["mode"] == "planner"
                out.append(time.perf_counter() - started)
            return out

        await planner_turns(3)  # warm-up
        alone = await planner_turns(rounds)
        started = time.perf_counter()
        llm_turn = asyncio.create_task(
            client.post(f"/v1/sessions/{slow}/messages", json={"text": "a sci-fi film"})
        )
        await asyncio.sleep(0.3)
        beside = []
        while not llm_turn.done() and len(beside) < 200:
            beside += await planner_turns(1)
        slow_answer = (await llm_turn).json()
        slow_s = time.perf_counter() - started
    base = statistics.median(alone)
    return {
        "llm_sleep_s": sleep_s,
        "llm_turn_s": round(slow_s, 2),
        "llm_turn_mode": slow_answer.get("mode"),
        "planner_alone": ms(alone),
        "planner_beside_slow_llm": ms(beside),
        "worst_delay_ms": round((max(beside) - base) * 1000, 1),
    }


def compare(runs: list[dict]) -> list[dict]:
    """One line per worker count: what the issue's target is about."""
    base = runs[0]
    return [
        {
            "workers": r["workers"],
            "errors": r["errors"],
            "single_p95_ms": r["single"]["p95_ms"],
            "load_p50_ms": r["load"]["p50_ms"],
            "load_p95_ms": r["load"]["p95_ms"],
            "p95_ratio": r["p95_ratio"],
            "messages_per_s": r["messages_per_s"],
            "load_p95_vs_first": round(r["load"]["p95_ms"] / base["load"]["p95_ms"], 2),
        }
        for r in runs
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["load", "isolation"])
    parser.add_argument("--home", type=Path, default=common.HOME)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--think", type=float, default=0.0, help="seconds between messages")
    parser.add_argument(
        "--ramp", type=float, default=0.0, help="conversations start at random within this"
    )
    parser.add_argument("--llm-sleep", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="server processes; load takes several counts (one run each, compared), "
        "isolation the first",
    )
    args = parser.parse_args()
    if min(args.workers) < 1:
        parser.error("--workers: each count must be at least 1")
    if args.home == common.HOME:
        common.prepare_dataset("ml-100k")
    record: dict[str, Any] = {
        "machine": common.machine(),
        "args": {**vars(args), "home": str(args.home)},
    }
    if args.what == "load":
        runs = []
        for workers in args.workers:
            with Server(args.home, "--llm", "offline", workers=workers) as server:
                runs.append(
                    asyncio.run(
                        run_load(
                            server.url,
                            args.sessions,
                            args.messages,
                            args.think,
                            args.ramp,
                            args.seed,
                            workers,
                        )
                    )
                )
        record["result"] = runs[0] if len(runs) == 1 else {"runs": runs, "compared": compare(runs)}
        counts = "" if args.workers == [1] else "-workers" + "-".join(map(str, args.workers))
        name = (
            f"serve-load-{args.sessions}x{args.messages}-think{args.think:g}"
            f"-ramp{args.ramp:g}-seed{args.seed}{counts}"
        )
    else:
        fake = slow_llm(args.llm_sleep)
        env = {
            "OPENAI_BASE_URL": f"http://127.0.0.1:{fake.server_address[1]}/v1",
            "OPENAI_API_KEY": "not-needed",
            "RECAGENT_LLM__TIMEOUT_S": str(args.llm_sleep * 4),
        }
        with Server(
            args.home, "--llm", "openai:slow-fake", env=env, workers=args.workers[0]
        ) as server:
            record["result"] = asyncio.run(run_isolation(server.url, args.llm_sleep, 20))
        fake.shutdown()
        name = f"serve-isolation-sleep{args.llm_sleep:g}"
    print(json.dumps(record["result"], indent=2))
    common.write_result(name, record)


if __name__ == "__main__":
    main()
