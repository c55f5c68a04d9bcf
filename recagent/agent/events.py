"""What a turn tells whoever watches it run (`ChatSession.ask(on_event=...)`):

- "step": a stage, already in words (str);
- "plan": the plan about to run (`recagent.agent.plan.Plan`);
- "tool": a tool the turn runs, as it starts ((name, args));
- "tool_call": a call the model makes ((name, args));
- "token": text the model writes (str).

`recagent.agent.steps` words the tool events for people.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

EventKind = Literal["step", "plan", "tool", "tool_call", "token"]
Event = Callable[[EventKind, Any], None]


def no_events(kind: EventKind, data: Any) -> None:
    """The listener of a turn nobody watches."""


__all__ = ["Event", "EventKind", "no_events"]
