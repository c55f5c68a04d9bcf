"""A turn as the run log keeps it: the message, kind and mode, the plan that ran, the tool
calls with arguments and durations, the model's calls and tokens, the titles it proposed and
how many the catalog had, the repairs, both readings when they differ, and the answer."""

from __future__ import annotations

import time

from recagent.agent.executor import Execution
from recagent.agent.llm_agent import AgentTurn
from recagent.agent.runlog import TurnRecord
from recagent.agent.schema import RankedList
from recagent.agent.turn import Turn
from recagent.agent.understand import Understood
from recagent.tools.base import ToolContext


def turn_record(
    session_id: str,
    dataset: str,
    ctx: ToolContext,
    ranked: RankedList,
    turn: Turn,
    llm: AgentTurn,
    understood: Understood,
    execution: Execution,
    prompt_hashes: dict[str, str],
    started: float,
) -> TurnRecord:
    """The run-log record of one answered turn (`started`: its `perf_counter` start)."""
    readings = {}
    rival = understood.rival
    if rival is not None and ranked.request is not None:
        readings = {
            ranked.request.reader: ranked.request.model_dump(mode="json"),
            rival.reader: rival.model_dump(mode="json"),
        }
    return TurnRecord(
        session_id=session_id,
        dataset=dataset,
        user_id=ctx.user_id,
        mode=ranked.mode,
        model=ranked.model,
        kind=ranked.kind,
        message=ranked.request.text if ranked.request else "",
        k=turn.k,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        llm_calls=llm.llm_calls,
        input_tokens=llm.input_tokens,
        output_tokens=llm.output_tokens,
        plan=ranked.plan.describe() if ranked.plan else [],
        titles_proposed=execution.titles_proposed,
        titles_found=execution.titles_found,
        tool_calls=[
            {
                "name": c.name,
                "args": c.args,
                "ok": c.ok,
                "ms": round(c.duration_ms, 2),
                "error": c.error,
            }
            for c in ctx.calls
        ],
        prompt_hashes={**prompt_hashes, **llm.prompt_hashes},
        repairs=ranked.repairs,
        fallback_reason=ranked.fallback_reason,
        readings=readings,
        items=[{"rank": it.rank, "item_id": it.item_id, "title": it.title} for it in ranked.items],
    )


__all__ = ["turn_record"]
