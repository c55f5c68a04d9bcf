"""The `requests` protocol: requests beyond "N items like this", each with the plan it should
get and outcomes anyone can check.

A case file is JSON lines (the default, `requests.jsonl` next to this module, is written for
ML-100k):

    {"id": "rank-heat", "user_id": "42", "before": [], "text": "rank these: Heat, Casino",
     "kind": "rank",
     "plan": [{"tool": "score_candidates", "titles": ["Heat (1995)", "Casino (1995)"]}],
     "checks": [{"check": "items_are", "titles": ["Heat (1995)", "Casino (1995)"]}]}

`before` are earlier messages of the same conversation, asked first. A case's plan is right
when the answer is of the expected `kind` and every expected step ran (the tool, with the
titles among its item ids or titles, the words in its query, and `combine` / `use_history`
where given). Checks:

- kind: the answer is of the case's kind
- items_are / includes / excludes: the answer's items are / include / leave out these titles
- genre_share: at least `at_least` of the top `top` items have one of `genres`
- no_genre: no item has any of `genres`
- between: at least `at_least` of the top `top` items share a genre with each title
- years: every item was released within [year_min, year_max]
- count: the answer has `n` items
- verdict: the verdict is on this title, with one of `labels`
- profile_genre: the profile names the person's most frequent genre
- cites: at least `at_least` of the top `top` items have evidence resting on these titles
- feeling: after the turn, the item at `rank` of the answer before it is learned as `feeling`
- learned: after the turn, these titles are learned with `feeling`
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent.agent.plan import Plan, PlanStep
from recagent.agent.request import Intent
from recagent.agent.schema import RankedList
from recagent.data.dataset import Dataset
from recagent.errors import DataError
from recagent.evals.runs import Record, RunConfig
from recagent.evals.tally import tally_turn

DEFAULT_CASES = Path(__file__).with_name("requests.jsonl")
TITLE_SCORE = 95.0
CheckName = Literal[
    "kind",
    "items_are",
    "includes",
    "excludes",
    "genre_share",
    "no_genre",
    "between",
    "years",
    "count",
    "verdict",
    "profile_genre",
    "cites",
    "feeling",
    "learned",
]


class StepExpected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str
    titles: list[str] = Field(default_factory=list)
    query: list[str] = Field(default_factory=list, description="Words the query contains.")
    combine: Literal["any", "all"] | None = None
    use_history: bool | None = None


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    check: CheckName
    titles: list[str] = Field(default_factory=list)
    genres: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    at_least: int = 1
    top: int = 10
    n: int | None = None
    rank: int | None = None
    feeling: str | None = None
    year_min: int | None = None
    year_max: int | None = None

    @property
    def name(self) -> str:
        return self.check


class RequestCase(BaseModel):
    """One request, what its plan should hold, and what its answer must satisfy."""

    model_config = ConfigDict(extra="forbid")

    id: str
    user_id: str | None = None
    before: list[str] = Field(default_factory=list)
    text: str
    k: int | None = None
    kind: Intent
    plan: list[StepExpected] = Field(default_factory=list)
    checks: list[Check] = Field(min_length=1)
    index: int = 0  # filled when loaded


def load_request_cases(path: Path | None, dataset: Dataset) -> list[RequestCase]:
    """Cases from a JSON-lines file (default: the packaged ones), every title checked
    against `dataset`'s catalog; a bad line is a `DataError` naming it."""
    path = path or DEFAULT_CASES
    if not path.is_file():
        raise DataError(path, "not a file" if path.exists() else "no such file")
    cases: list[RequestCase] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = RequestCase.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not JSON ({exc.msg})", number) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "case"
            raise DataError(path, f"{where}: {first['msg']}", number) from exc
        titles = [t for s in case.plan for t in s.titles] + [
            t for c in case.checks for t in c.titles
        ]
        for title in titles:
            if title_id(dataset, title) is None:
                raise DataError(path, f"no title {title!r} in {dataset.name}", number)
        case.index = len(cases) + 1
        cases.append(case)
    if not cases:
        raise DataError(path, "no cases in the file")
    return cases


def title_id(dataset: Dataset, title: str) -> str | None:
    hits = dataset.titles.search(title, limit=1, min_score=TITLE_SCORE)
    return hits[0].item_id if hits else None


def _ids(dataset: Dataset, titles: list[str]) -> list[str]:
    return [i for i in (title_id(dataset, t) for t in titles) if i is not None]


def _step_matches(expected: StepExpected, step: PlanStep, dataset: Dataset) -> bool:
    if step.tool != expected.tool or not step.ok:
        return False
    args = step.args
    if expected.titles:
        named = {
            str(i)
            for i in [*(args.get("item_ids") or []), *_ids(dataset, args.get("titles") or [])]
        }
        if not set(_ids(dataset, expected.titles)) <= named:
            return False
    if expected.query:
        query = str(args.get("query") or "").lower()
        if not all(w.lower() in query for w in expected.query):
            return False
    if expected.combine is not None and args.get("combine", "any") != expected.combine:
        return False
    return expected.use_history is None or bool(args.get("use_history")) == expected.use_history


def plan_right(case: RequestCase, ranked: RankedList, dataset: Dataset) -> bool:
    """The answer is of the case's kind and every expected step ran."""
    plan = ranked.plan or Plan()
    return ranked.kind == case.kind and all(
        any(_step_matches(e, s, dataset) for s in plan.steps) for e in case.plan
    )


def run_check(
    check: Check,
    case: RequestCase,
    ranked: RankedList,
    dataset: Dataset,
    before: list[str],
    feelings: dict[str, str],
) -> bool:
    """Whether the answer passes `check` (`before`: the ids of the answer before this
    turn; `feelings`: what the conversation learned, after it)."""
    catalog = dataset.catalog
    ids = [it.item_id for it in ranked.items]
    top = ids[: check.top]
    wanted = _ids(dataset, check.titles)
    if check.check == "kind":
        return ranked.kind == case.kind
    if check.check == "items_are":
        return sorted(ids) == sorted(wanted)
    if check.check == "includes":
        return set(wanted) <= set(ids)
    if check.check == "excludes":
        return not set(wanted) & set(ids)
    if check.check == "genre_share":
        have = sum(bool(set(catalog[i].genres) & set(check.genres)) for i in top)
        return have >= check.at_least
    if check.check == "no_genre":
        return bool(ids) and not any(set(catalog[i].genres) & set(check.genres) for i in ids)
    if check.check == "between":
        sets = [set(catalog[i].genres) for i in wanted]
        both = sum(all(set(catalog[i].genres) & s for s in sets) for i in top)
        return len(sets) >= 2 and both >= check.at_least
    if check.check == "years":
        low, high = check.year_min or 0, check.year_max or 9999
        return bool(ids) and all(low <= (catalog[i].year or -1) <= high for i in ids)
    if check.check == "count":
        return len(ids) == check.n
    if check.check == "verdict":
        v = ranked.verdict
        return (
            v is not None and v.item_id in wanted and (not check.labels or v.label in check.labels)
        )
    if check.check == "profile_genre":
        p = ranked.profile
        if p is None or not p.profile.top_genres:
            return False
        return p.profile.top_genres[0].genre.lower() in p.summary.lower()
    if check.check == "cites":
        cited = sum(
            any(set(ev.because_of) & set(wanted) for ev in it.evidence)
            for it in ranked.items[: check.top]
        )
        return cited >= check.at_least
    if check.check == "feeling":
        rank = check.rank or 0
        if not 1 <= rank <= len(before):
            return False
        return feelings.get(before[rank - 1]) == check.feeling
    if check.check == "learned":
        return bool(wanted) and all(feelings.get(i) == check.feeling for i in wanted)
    return False


def answer_request(session_of: object, case: RequestCase, config: RunConfig, name: str) -> Record:
    """One case through an agent pipeline's session (a fresh conversation)."""
    record = Record(pipeline=name, user_idx=case.index, user_id=case.id, target="")
    started = time.perf_counter()
    try:
        session = session_of.session()  # type: ignore[attr-defined]
        session.set_user(case.user_id)
        for text in case.before:
            session.ask(text)
        last = session.conversation.last_answer
        before = [it.item_id for it in last.items] if last else []
        started = time.perf_counter()
        ranked: RankedList = session.ask(case.text, k=case.k)
        record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        tally_turn(record, session.last_turn, ranked)
        record.items = [it.item_id for it in ranked.items]
        record.model = ranked.model
        record.kind = ranked.kind
        dataset = session.dataset
        feelings = dict(session.conversation.feelings)
        record.checks = {
            f"{n}:{c.check}": run_check(c, case, ranked, dataset, before, feelings)
            for n, c in enumerate(case.checks, start=1)
        }
        record.plan_ok = plan_right(case, ranked, dataset)
        return record
    except Exception as exc:  # a case that crashes is a failed case, never a crashed run
        record.failure = f"{type(exc).__name__}: {exc}"[:500]
        record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        return record


__all__ = [
    "DEFAULT_CASES",
    "Check",
    "RequestCase",
    "StepExpected",
    "answer_request",
    "load_request_cases",
    "plan_right",
    "run_check",
]
