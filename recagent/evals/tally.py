"""What one agent turn cost and did, added to an evaluation record: one place for every
protocol that runs the agent (dialogues, conversations, requests)."""

from __future__ import annotations

from recagent.agent.runlog import TurnRecord
from recagent.agent.schema import RankedList
from recagent.evals.runs import Record


def tally_turn(record: Record, turn_log: TurnRecord | None, ranked: RankedList) -> None:
    """Add a turn's model calls, tokens, tool calls and the titles its model named (from its
    run-log record), and the answer's repairs and the plan steps that ran (and how many of
    those the model wrote) to `record`."""
    if turn_log:
        record.llm_calls += turn_log.llm_calls
        record.input_tokens += turn_log.input_tokens
        record.output_tokens += turn_log.output_tokens
        record.tool_calls += len(turn_log.tool_calls)
        record.tool_failures += sum(not c["ok"] for c in turn_log.tool_calls)
        record.titles_proposed += turn_log.titles_proposed
        record.titles_found += turn_log.titles_found
    record.repairs += sum(v for key, v in ranked.repairs.items() if key != "backfilled")
    if ranked.plan is not None:
        record.steps += sum(bool(s.ok) for s in ranked.plan.steps)
        record.model_steps += sum(bool(s.ok) and s.source != "rules" for s in ranked.plan.steps)


__all__ = ["tally_turn"]
