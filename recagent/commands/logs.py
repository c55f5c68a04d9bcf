"""`recagent logs`: the turns recorded in the workspace's run log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from recagent.agent.runlog import RunLog
from recagent.commands.context import get_context
from recagent.commands.tables import print_fitted


def logs_cmd(
    ctx: typer.Context,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="How many turns.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Full records as JSON.")] = False,
    plan: Annotated[
        bool, typer.Option("--plan", help="Each turn's plan in full: every step, who wrote it.")
    ] = False,
) -> None:
    """Recent chat and recommend turns: message, kind, mode, model, the plan that ran (steps
    the model wrote are marked *), tokens, latency."""
    app_ctx = get_context(ctx)
    records = RunLog(app_ctx.workspace.log_db).last(last)
    if as_json:
        app_ctx.print_json([r.model_dump(mode="json") for r in records])
        return
    if not records:
        app_ctx.out.print("no turns logged yet")
        return
    if plan:
        for r in records:
            app_ctx.out.print(f"[bold]{escape(r.created_at)}[/] {escape(r.message[:80])}")
            for line in r.plan or [f"rules: {c['name']}" for c in r.tool_calls]:
                app_ctx.out.print(f"  {escape(line)}", soft_wrap=True)
        return
    rows = []
    for r in records:
        tools = " ".join(_step_name(line) for line in r.plan) or " ".join(
            c["name"] for c in r.tool_calls
        )
        tokens = f"{r.input_tokens}/{r.output_tokens}" if r.llm_calls else "-"
        top = ", ".join(i["title"] for i in r.items[:3])
        rows.append(
            [
                r.created_at,
                r.user_id or "-",
                r.kind + ", " + r.mode + (f" ({r.model})" if r.model else ""),
                escape(r.message[:60]),
                tools,
                tokens,
                f"{r.latency_ms:.0f}",
                escape(top),
            ]
        )
    headers = ["when", "user", "kind, mode", "message", "plan", "tokens", "ms", "top items"]
    print_fitted(app_ctx.out, headers, rows, wrap=["message", "plan", "top items"])


def _step_name(line: str) -> str:
    """A plan line's tool, marked * when the model wrote it, ! when it failed or was
    dropped."""
    source, _, rest = line.partition(": ")
    name = rest.split("(", 1)[0]
    failed = "(dropped)" in rest or "(failed:" in rest
    return ("*" if source in ("llm", "loop") else "") + name + ("!" if failed else "")
