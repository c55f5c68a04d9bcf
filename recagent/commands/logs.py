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
) -> None:
    """Recent chat and recommend turns: message, mode, model, tool calls, tokens, latency."""
    app_ctx = get_context(ctx)
    records = RunLog(app_ctx.workspace.log_db).last(last)
    if as_json:
        app_ctx.print_json([r.model_dump(mode="json") for r in records])
        return
    if not records:
        app_ctx.out.print("no turns logged yet")
        return
    rows = []
    for r in records:
        tools = " ".join(c["name"] for c in r.tool_calls)
        tokens = f"{r.input_tokens}/{r.output_tokens}" if r.llm_calls else "-"
        top = ", ".join(i["title"] for i in r.items[:3])
        rows.append(
            [
                r.created_at,
                r.user_id or "-",
                r.mode + (f" ({r.model})" if r.model else ""),
                escape(r.message[:60]),
                tools,
                tokens,
                f"{r.latency_ms:.0f}",
                escape(top),
            ]
        )
    headers = ["when", "user", "mode", "message", "tools", "tokens", "ms", "top items"]
    print_fitted(app_ctx.out, headers, rows, wrap=["message", "tools", "top items"])
