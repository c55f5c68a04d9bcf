"""Reading a knowledge answer: the aspects the model filled in, or why there are none.

Small models wrap the object in prose or code fences, write lists where a phrase was asked
for, or answer `key: value` lines instead of JSON; all of that is read. An answer that says
it does not know the item, or whose every aspect is empty or "unknown", is `unknown`; one with
nothing readable in it is `unparsed`. Neither is dropped: both are stored and counted.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel

Status = Literal["ok", "unknown", "unparsed"]
_OBJECT = re.compile(r"\{.*\}", re.S)
_LINE = re.compile(r"^\s*[-*]?\s*\"?([A-Za-z][A-Za-z _-]{1,40})\"?\s*:\s*(.+?)\s*,?\s*$")
_EMPTY = {"", "unknown", "n/a", "na", "none", "null", "not known", "not applicable", "-"}
MAX_VALUE_CHARS = 200


class Reading(BaseModel):
    status: Status
    aspects: dict[str, str] = {}


def _value(raw: object) -> str:
    if isinstance(raw, list | tuple):
        parts = [_value(v) for v in raw]
        return ", ".join(p for p in parts if p)
    if isinstance(raw, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in raw.items() if _value(v))
    if raw is None or isinstance(raw, bool):
        return ""
    text = " ".join(str(raw).split()).strip(" .;\"'")
    return "" if text.lower() in _EMPTY else text[:MAX_VALUE_CHARS]


def _from_json(text: str) -> dict[str, object] | None:
    match = _OBJECT.search(text)
    if not match:
        return None
    blob = match.group()
    for candidate in (blob, re.sub(r",\s*([}\]])", r"\1", blob)):  # trailing commas
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    return None


def _from_lines(text: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            out[match.group(1).strip()] = match.group(2)
    return out


def _echoes(value: str, ask: str) -> bool:
    """The value repeats what the prompt asked for ('adjectives for its mood and tone'),
    as small models do: most of its words are the question's."""
    words = re.findall(r"[a-z]+", value.lower())
    asked = set(re.findall(r"[a-z]+", ask.lower()))
    return len(words) >= 2 and sum(
        w.rstrip("s") in {a.rstrip("s") for a in asked} for w in words
    ) >= 0.6 * len(words)


def read_knowledge(text: str, aspects: list[str] | dict[str, str]) -> Reading:
    """The aspects named in the template that the answer filled in (in the template's order),
    plus any others it gave (after them). With `aspects` as name -> what the prompt asks, a
    value that only repeats the question is no knowledge."""
    asks = dict(aspects) if isinstance(aspects, dict) else {}
    aspects = list(aspects)
    data = _from_json(text)
    if data is None:
        data = _from_lines(text)
    if not data:
        return Reading(status="unparsed")
    if data.get("unknown") is True or str(data.get("unknown", "")).lower() == "true":
        return Reading(status="unknown")
    wanted = {a.lower(): a for a in aspects}
    found: dict[str, str] = {}
    for key, raw in data.items():
        name = wanted.get(str(key).strip().lower().replace(" ", "_"), str(key).strip())
        value = _value(raw)
        if value and name != "unknown" and not _echoes(value, asks.get(name, "")):
            found[name] = value
    if not found:
        return Reading(status="unknown")
    order = {a: i for i, a in enumerate(aspects)}
    ordered = dict(sorted(found.items(), key=lambda kv: order.get(kv[0], len(order))))
    return Reading(status="ok", aspects=ordered)


def knowledge_text(aspects: dict[str, str]) -> str:
    """The aspects as one passage, the way the index embeds them: 'Mood tone: dark, tense.'"""
    return " ".join(
        f"{name.replace('_', ' ').capitalize()}: {value.rstrip('.')}."
        for name, value in aspects.items()
    )


__all__ = ["Reading", "Status", "knowledge_text", "read_knowledge"]
