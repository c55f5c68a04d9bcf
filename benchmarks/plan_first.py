"""Issue 19: does the path from a model's own titles to the answer work? A scripted model
that knows the films (it proposes the gold's neighbours, titles written loosely: no year,
lower case) drives plan mode on redial-dev cases, against the planner on the same cases,
with paired bootstrap intervals.

    python benchmarks/plan_first.py scripted --cases ../shared/data/redial-dev/cases.jsonl \\
        --dataset ml-latest-small --n 100 [--with-gold]

`--with-gold` puts the gold title itself among the proposals (a model that knows the answer:
the ceiling of the path); without it only the gold's co-watched neighbours are proposed (a
model that knows the neighbourhood). The real model's numbers come from `recagent eval run
--protocol dialogues --pipelines planner,llm,llm-titles` (benchmarks/RESULTS.md).

    python benchmarks/plan_first.py latency --requests 10

`latency`: plain one-line requests through `recagent recommend` (default k) with the
configured LLM (OPENAI_BASE_URL), one process each, wall time, model calls and tokens from
the run log.

    python benchmarks/plan_first.py prompt

`prompt`: the static prompt prefix (system prompt, the two tools' schemas) in the server's
own tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from recagent.app import open_services
from recagent.config import load_settings
from recagent.evals.beyond import bootstrap_ci
from recagent.evals.dialogues import load_cases
from recagent.metrics import recall
from recagent.workspace import Workspace

PLAIN = [
    "recommend three westerns",
    "a feel-good comedy for tonight",
    "dark sci-fi from the 80s",
    "something like Heat but funnier",
    "a romantic comedy from the 90s",
    "war movies but nothing too violent",
    "a scary movie, not too gory",
    "an animated film for the kids",
    "a mind-bending thriller",
    "a classic film noir",
    "a musical",
    "a heist movie",
]


class Oracle(BaseChatModel):
    """Reads the request as the rules do, names `titles` as its own, picks the shortlist's
    first items in the order given."""

    titles: list[str] = Field(default_factory=list)
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-oracle"

    def bind_tools(self, tools: Any, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tool_choice=tool_choice)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        if kwargs.get("tool_choice") == "read_request":
            args: dict[str, Any] = {"titles": self.titles, "plan": []}
        else:
            ids = re.findall(r"^- (\S+): ", str(messages[-1].content), re.M)[:10]
            args = {"items": [{"item_id": i} for i in ids], "message": ""}
        name = kwargs.get("tool_choice") or "final_answer"
        reply = AIMessage(
            content="", tool_calls=[{"name": name, "args": args, "id": f"c{self.calls}"}]
        )
        reply.usage_metadata = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        return ChatResult(generations=[ChatGeneration(message=reply)])


def workspace_settings() -> tuple[Workspace, Any]:
    settings = load_settings()
    return Workspace(settings.home), settings


def scripted(args: argparse.Namespace) -> None:
    workspace, settings = workspace_settings()
    services = open_services(workspace, settings, args.dataset, build_missing=False)
    dataset = services.dataset
    every = load_cases(Path(args.cases), dataset)
    # the cases `recagent eval run --protocol dialogues --users N --seed 0` samples
    keep = np.sort(np.random.default_rng(0).choice(len(every), size=args.n, replace=False))
    cases = [every[int(i)] for i in keep if every[int(i)].new_gold]
    pairs = services.pairs
    rows = []
    for case in cases:
        gold = case.new_gold
        near = [i for i, _, _ in pairs.related(gold, 12) if i not in set(case.named) | set(gold)][
            :9
        ]
        proposed = ([gold[0]] if args.with_gold else []) + near
        titles = [dataset.catalog[i].title.lower() for i in proposed]  # loosely written
        out = {}
        for name in ("planner", "plan"):
            model = Oracle(titles=titles) if name == "plan" else None
            session = services.session(model, "oracle" if model else None)
            session.set_user(None)
            message = session.replay(case.messages)
            ranked = session.ask(message, k=20)
            out[name] = [it.item_id for it in ranked.items]
        rows.append((gold, out, proposed))
    for k in (10, 20):
        base = np.array([recall(o["planner"], g, k) for g, o, _ in rows])
        plan = np.array([recall(o["plan"], g, k) for g, o, _ in rows])
        lo, hi = bootstrap_ci(plan - base, seed=0)
        print(
            f"R@{k}: planner {base.mean():.3f}  plan mode {plan.mean():.3f}  "
            f"diff {plan.mean() - base.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]  n={len(rows)}"
        )
    found = sum(len(p) for _, _, p in rows)
    print(f"titles proposed {found} (all in the catalog by construction, written loosely)")


def latency(args: argparse.Namespace) -> None:
    env = dict(os.environ)
    if not env.get("OPENAI_BASE_URL"):
        sys.exit('set OPENAI_BASE_URL (e.g. eval "$(../shared/tools/local-llm env)")')
    workspace, _ = workspace_settings()
    from recagent.agent.runlog import RunLog

    log = RunLog(workspace.log_db)
    rows = []
    for text in PLAIN[: args.requests]:
        started = time.perf_counter()
        done = subprocess.run(
            ["recagent", "recommend", text, "--dataset", args.dataset, "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - started
        record = log.last(1)[0]
        answer = json.loads(done.stdout) if done.returncode == 0 else {}
        rows.append((text, wall, record))
        print(
            f"{wall:6.1f} s  calls {record.llm_calls}  in {record.input_tokens:5d}  "
            f"out {record.output_tokens:4d}  mode {answer.get('mode')}  items "
            f"{len(answer.get('items', []))}  {text}",
            flush=True,
        )
    walls = [w for _, w, _ in rows]
    two = sum(r.llm_calls == 2 for _, _, r in rows)
    print(
        f"p50 {np.median(walls):.1f} s  p90 {np.percentile(walls, 90):.1f} s  "
        f"two calls {two}/{len(rows)}  input tokens p50 "
        f"{np.median([r.input_tokens for _, _, r in rows]):.0f}  output tokens p50 "
        f"{np.median([r.output_tokens for _, _, r in rows]):.0f}"
    )


def prompt(args: argparse.Namespace) -> None:
    """Where a plan-mode turn's prompt tokens go: the static prefix (system prompt and the two
    tools' schemas, the same for both calls of every turn) counted by the server's own
    tokenizer (llama.cpp's `/extras/tokenize/count`)."""
    import httpx

    from recagent.agent.llm_agent import tool_defs
    from recagent.prompts.registry import PromptRegistry

    base = os.environ.get("OPENAI_BASE_URL", "").rstrip("/")
    if not base:
        sys.exit('set OPENAI_BASE_URL (e.g. eval "$(../shared/tools/local-llm env)")')
    workspace, settings = workspace_settings()
    registry = PromptRegistry(workspace.prompts_dir)
    style = registry.render("explanation_style").text
    parts = {
        "system prompt": registry.render(
            "system", domain=settings.agent.domain, explanation_style=style
        ).text
    }
    for tool in tool_defs(10, explain=settings.agent.explain == "model"):
        parts[f"tool {tool['function']['name']}"] = json.dumps(tool)
    root = base.removesuffix("/v1")
    total = 0
    for name, text in parts.items():
        reply = httpx.post(f"{root}/extras/tokenize/count", json={"input": text}, timeout=600)
        reply.raise_for_status()
        count = int(reply.json()["count"])
        total += count
        print(f"{count:6d}  {name}")
    print(f"{total:6d}  static prefix (both calls of every turn)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scripted")
    s.add_argument("--cases", required=True)
    s.add_argument("--dataset", default="ml-latest-small")
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--with-gold", action="store_true")
    s.set_defaults(run=scripted)
    lat = sub.add_parser("latency")
    lat.add_argument("--requests", type=int, default=10)
    lat.add_argument("--dataset", default="ml-100k")
    lat.set_defaults(run=latency)
    pr = sub.add_parser("prompt")
    pr.set_defaults(run=prompt)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
