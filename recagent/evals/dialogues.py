"""The `dialogues` protocol: real conversations, and the items a person suggested next.

A case file is JSON lines, one case a line, in the format of `../shared/data/redial-dev`:

    {"dialog_id": "20048", "turn": 4,
     "messages": [{"role": "user", "text": "... like Avengers: Infinity War (2018)"},
                  {"role": "assistant", "text": "Have you seen The Avengers (2012)"},
                  {"role": "user", "text": "i really enjoyed that one ..."}],
     "gold": [{"title": "It (2017)", "item_id": "175303"}]}

`messages` is the conversation so far (roles `user` and `assistant`), `gold` what the other
side suggested next; a gold entry names its catalog item as `item_id` (or `movieId`, as in
ReDial); entries without one are left out. Every pipeline answers the next turn: the agent
pipelines (`planner`, `llm`) observe the earlier messages and are asked the last one as a
new user; `popularity` ranks what is popular; `sasrec` and `vector` score the movies the
person said they liked (read by the rules) as a history. Recall@k is measured over the gold
items the dialogue had not named yet (the headline: repeating what someone just said is
easy) and over all gold items.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent.agent.conversation import Conversation
from recagent.agent.request import ChatMessage
from recagent.agent.rules import RuleReader
from recagent.data.dataset import Dataset
from recagent.errors import DataError

DIALOGUE_KS = (1, 5, 10, 20, 50)


class Gold(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str = ""
    item_id: str | None = None
    movieId: str | None = None

    @property
    def id(self) -> str | None:
        return self.item_id or self.movieId


class DialogueCase(BaseModel):
    """One case: the conversation so far, and what came next, in catalog item ids."""

    model_config = ConfigDict(extra="ignore")

    dialog_id: str = ""
    turn: int = 0
    messages: list[ChatMessage] = Field(min_length=1)
    gold: list[Gold] = Field(default_factory=list)
    # filled when loaded against a catalog
    index: int = 0
    gold_ids: list[str] = Field(default_factory=list)
    named: list[str] = Field(default_factory=list)

    @property
    def case_id(self) -> str:
        return f"{self.dialog_id}:{self.turn}" if self.dialog_id else str(self.index)

    @property
    def new_gold(self) -> list[str]:
        """Gold items the dialogue had not named yet."""
        return [g for g in self.gold_ids if g not in set(self.named)]


def load_cases(path: Path, dataset: Dataset) -> list[DialogueCase]:
    """Cases from a JSON-lines file, their gold items and the titles each dialogue named
    resolved against `dataset`'s catalog; a bad line is a `DataError` naming it."""
    if not path.is_file():
        raise DataError(path, "not a file" if path.exists() else "no such file")
    reader = RuleReader(dataset.catalog, dataset.titles, dataset.genres)
    cases: list[DialogueCase] = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc.reason})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            case = DialogueCase.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not JSON ({exc.msg})", number) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "case"
            raise DataError(path, f"{where}: {first['msg']}", number) from exc
        case.index = len(cases) + 1
        case.gold_ids = list(
            dict.fromkeys(g.id for g in case.gold if g.id and g.id in dataset.catalog)
        )
        named: list[str] = []
        for m in case.messages:
            for mention in reader.read(m.text, role=m.role).mentions:
                if mention.item_id and mention.item_id not in named:
                    named.append(mention.item_id)
        case.named = named
        cases.append(case)
    if not cases:
        raise DataError(path, "no cases in the file")
    return cases


def liked_history(reader: RuleReader, case: DialogueCase) -> list[str]:
    """The items the person said they loved, liked, saw or wanted more like, in order
    (what the `sasrec` and `vector` pipelines score as a history)."""
    conversation = Conversation(dataset="")
    for m in case.messages:
        request = reader.read(m.text, role=m.role)
        if m.role == "user":
            delta = conversation.hear(request)
        else:
            delta = conversation.suggested([x.item_id for x in request.mentions if x.item_id])
        conversation = conversation.apply(delta)
    return conversation.history()


__all__ = [
    "DIALOGUE_KS",
    "DialogueCase",
    "Gold",
    "liked_history",
    "load_cases",
]
