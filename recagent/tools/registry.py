"""The tools, registered explicitly in one place, and the one way to call one.

`run_tool` validates arguments, runs the tool and records the call; it never raises for bad
input (a bad call becomes a typed `ToolError` the caller, or the model, can read).
`langchain_tools` wraps tools as LangChain tools for the model's tool loop; each call goes
through a runner the caller gives (the executor, which repairs and records it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ValidationError

from recagent.errors import RecagentError
from recagent.tools import catalog, profile, recall, score, suggest
from recagent.tools.base import ToolCall, ToolContext, ToolError, ToolSpec, llm_schema

TOOLS: Mapping[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        *recall.SPECS,
        *score.SPECS,
        *suggest.SPECS,
        *catalog.SPECS,
        *profile.SPECS,
    )
}


def validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )


def run_tool(name: str, args: dict[str, Any] | BaseModel, ctx: ToolContext) -> BaseModel:
    """Validate `args`, run the tool, record the call. Never raises for bad input."""
    started = time.perf_counter()
    raw = args.model_dump() if isinstance(args, BaseModel) else dict(args or {})
    if ctx.on_call is not None:
        ctx.on_call(name, raw)
    spec = TOOLS.get(name)
    result: BaseModel
    if spec is None:
        result = ToolError(error=f"no tool named {name!r}", hint=f"tools: {', '.join(TOOLS)}")
    else:
        try:
            parsed = args if isinstance(args, spec.args) else spec.args.model_validate(raw)
            result = spec.run(parsed, ctx)
        except ValidationError as exc:
            schema = json.dumps(spec.args.model_json_schema().get("properties", {}))
            result = ToolError(
                error=f"invalid arguments: {validation_message(exc)}",
                hint=f"arguments schema: {schema}",
            )
        except RecagentError as exc:
            result = ToolError(error=str(exc))
    error = result.error if isinstance(result, ToolError) else None
    ms = (time.perf_counter() - started) * 1000
    ctx.calls.append(ToolCall(name, raw, error is None, ms, error))
    return result


Runner = Callable[[str, dict[str, Any]], str]
"""Runs one call the model makes (tool name, raw arguments) and returns what it reads."""


def langchain_tools(names: Sequence[str], runner: Runner) -> list[BaseTool]:
    """The tools `names` as LangChain tools; each call goes through `runner`. Arguments
    arrive unvalidated (the runner validates and repairs them), so a bad call becomes a
    result the model can read and correct."""
    tools: list[BaseTool] = []
    for name in names:
        spec = TOOLS[name]

        def call(_name: str = spec.name, **kwargs: Any) -> str:
            return runner(_name, kwargs)

        tools.append(
            StructuredTool.from_function(
                func=call,
                name=spec.name,
                description=spec.description,
                args_schema=llm_schema(spec.args),
            )
        )
    return tools


__all__ = ["TOOLS", "Runner", "langchain_tools", "run_tool", "validation_message"]
