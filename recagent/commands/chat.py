"""`recagent chat` (a REPL) and `recagent recommend` (one shot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recagent.agent.request import ChatMessage
from recagent.commands.context import AppContext, get_context
from recagent.errors import DataError, RecagentError

if TYPE_CHECKING:  # the agent loads torch, LangChain and the models: only when a command runs
    from recagent.agent.schema import RankedList
    from recagent.agent.session import ChatSession

UserOpt = Annotated[
    str | None, typer.Option("--user", "-u", help="User id from the dataset (unknown = new user).")
]
LLMOpt = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="offline | openai:<model> \\[default: openai when OPENAI_API_KEY or OPENAI_BASE_URL "
        "is set, else offline]",
        show_default=False,
    ),
]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset name.")]
HELP = """commands: /user ID  /history [N]  /profile  /why [N]  /reset  /help  /quit
refine the last list in words: "no horror", "older ones", "more like the second one", "more"
ask beyond a list: "rank these: Heat, Casino, Fargo", "is Titanic a good pick for me?",
"something between Alien and Toy Story", "what do you know about my taste?", "why not Fargo?"
/why without N shows the plan that ran for the last answer"""


def _session(
    app_ctx: AppContext, dataset: str | None, user: str | None, llm: str | None
) -> ChatSession:
    from recagent.app import build_session, load_services

    services = load_services(
        app_ctx.workspace,
        app_ctx.settings,
        app_ctx.dataset_name(dataset),
        app_ctx.reporter,
        build_missing=True,
    )
    for note in services.notes:
        app_ctx.err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    session = build_session(services, app_ctx.settings, app_ctx.workspace, llm)
    app_ctx.err.print(f"[dim]{escape(session.set_user(user))}[/]")
    return session


def render(console: Console, ranked: RankedList) -> None:
    """An answer of any kind: a list (recommendations, or the person's own titles ranked), a
    verdict on one title with its evidence, or what is known of the person's taste."""
    label = f"LLM ({ranked.model})" if ranked.mode == "llm" else "offline: rule-based planner"
    if ranked.verdict is not None:
        verdict = ranked.verdict
        console.print(
            f"[bold]{escape(verdict.summary)}[/]  [dim]\\[{escape(label)}][/]", soft_wrap=True
        )
        for reason in verdict.reasons:
            console.print(f"  - {escape(reason)}", soft_wrap=True)
    elif ranked.profile is not None:
        console.print(f"[bold]Your taste[/]  [dim]\\[{escape(label)}][/]")
        console.print(escape(ranked.profile.summary), soft_wrap=True)
    else:
        table = Table(
            title=f"{escape(ranked.message)}  [dim]\\[{escape(label)}][/]", show_lines=False
        )
        table.add_column("#", justify="right")
        table.add_column("title")
        table.add_column("genres", style="dim")
        table.add_column("why")
        for it in ranked.items:
            year = f" ({it.year})" if it.year else ""
            table.add_row(
                str(it.rank),
                escape(it.title + year),
                escape(", ".join(it.genres)),
                escape(it.explanation),
            )
        console.print(table)
    for notice in ranked.notices:
        console.print(f"[yellow]note:[/] {escape(notice)}")
    if ranked.repairs:
        fixes = ", ".join(f"{k}={v}" for k, v in sorted(ranked.repairs.items()))
        console.print(f"[dim]guard repairs: {escape(fixes)}[/]")


def _on_event(console: Console) -> Any:
    def emit(kind: str, data: Any) -> None:
        if kind == "tool_call":
            name, args = data
            shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
            console.print(f"[dim]→ {escape(name)}({escape(shown[:120])})[/]")
        elif kind == "token":
            console.print(escape(data), end="", style="dim", soft_wrap=True)

    return emit


def _command(session: ChatSession, line: str, console: Console) -> bool:
    """Handle a /command; False means quit."""
    from recagent.tools.profile import SummarizeProfileResult
    from recagent.tools.registry import run_tool

    cmd, _, arg = line[1:].partition(" ")
    arg = arg.strip()
    if cmd in ("quit", "exit", "q"):
        return False
    if cmd == "help":
        console.print(HELP)
    elif cmd == "user":
        console.print(escape(session.set_user(arg or None)))
    elif cmd == "reset":
        session.reset()
        console.print("session reset (same user)")
    elif cmd == "history":
        limit = int(arg) if arg.isdigit() else 10
        result = run_tool("get_history", {"limit": max(1, limit)}, session.ctx)
        entries = getattr(result, "recent_first", [])
        if not entries:
            console.print("no history (a new user)")
        for e in entries:
            rating = f"  rated {e.rating:g}" if e.rating is not None else ""
            console.print(f"  {escape(e.item.title)} ({e.item.year}){rating}")
    elif cmd == "profile":
        session.ctx.history = session.known_history()
        result = run_tool("summarize_profile", {}, session.ctx)
        if isinstance(result, SummarizeProfileResult):
            console.print(escape(result.summary))
        learned = session.conversation.learned(session.dataset.catalog)
        console.print(f"learned in this conversation: {escape(learned.describe())}")
    elif cmd == "why":
        last = session.conversation.last_answer
        if not arg and last is not None and last.plan is not None:
            console.print(f"[bold]the plan that ran[/] ({last.plan.mode}):")
            for line in last.plan.describe():
                console.print(f"  {escape(line)}", soft_wrap=True)
            return True
        item = session.why(int(arg)) if arg.isdigit() else None
        if item is None:
            console.print("usage: /why N, for an item of the last list (/why: the plan)")
        else:
            console.print(f"[bold]{escape(item.title)}[/]: {escape(item.explanation)}")
            for ev in item.evidence:
                console.print(f"  [dim]{escape(ev.model_dump_json(exclude_none=True))}[/]")
            if last is not None and last.plan is not None:
                found_by = {ev.tool for ev in item.evidence}
                steps = [s for s in last.plan.steps if s.tool in found_by and s.ok]
                for step in steps:
                    console.print(f"  [dim]from the plan: {escape(step.describe())}[/]")
    else:
        console.print(f"unknown command /{escape(cmd)}; {HELP}")
    return True


def chat_cmd(
    ctx: typer.Context,
    user: UserOpt = None,
    llm: LLMOpt = None,
    dataset: DatasetOpt = None,
    k: Annotated[int | None, typer.Option("--k", help="Items per answer.")] = None,
) -> None:
    """Chat for recommendations. Missing data, model and index are built on first run."""
    app_ctx = get_context(ctx)
    session = _session(app_ctx, dataset, user, llm)
    console = app_ctx.out
    mode = f"LLM {session.model_name}" if session.agent else "offline (rule-based planner)"
    console.print(f"recagent · {session.dataset.name} · mode: {escape(mode)} · /help for commands")
    while True:
        try:
            line = console.input("[bold]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not line:
            continue
        if line.startswith("/"):
            if not _command(session, line, console):
                return
            continue
        try:
            ranked = session.ask(line, k=k, on_event=_on_event(console))
        except RecagentError as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}")
            continue
        console.print()
        render(console, ranked)


def read_dialogue(path: Path) -> list[ChatMessage]:
    """A conversation file: a JSON list of {"role", "text"} (as redial-dev's `messages`), or
    an object holding such a list under "messages"."""
    if not path.is_file():
        raise DataError(path, "not a file" if path.exists() else "no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not JSON ({exc.msg})", exc.lineno) from exc
    if isinstance(data, dict):
        data = data.get("messages")
    if not isinstance(data, list) or not data:
        raise DataError(path, 'expected a list of {"role": "user"|"assistant", "text": "..."}')
    try:
        return [ChatMessage.model_validate(m) for m in data]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise DataError(path, f"message {where}: {first['msg']}") from exc


def recommend_cmd(
    ctx: typer.Context,
    message: Annotated[
        str, typer.Argument(help='What you want, e.g. "dark sci-fi from the 80s".')
    ] = "",
    user: UserOpt = None,
    llm: LLMOpt = None,
    dataset: DatasetOpt = None,
    k: Annotated[int | None, typer.Option("--k", help="How many items \\[default: 10].")] = None,
    dialogue: Annotated[
        Path | None,
        typer.Option(
            help="A conversation so far (JSON list of {role, text}, as in redial-dev): "
            "answer its next turn (the MESSAGE, if given, is added as the person's)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the RankedList as JSON.")] = False,
) -> None:
    """One recommendation turn, printed as a table (or JSON)."""
    app_ctx = get_context(ctx)
    earlier = read_dialogue(dialogue) if dialogue is not None else []
    session = _session(app_ctx, dataset, user, llm)
    if message:
        earlier.append(ChatMessage(role="user", text=message))
    if earlier:
        message = session.replay(earlier)
    ranked = session.ask(message, k=k, on_event=None if as_json else _on_event(app_ctx.err))
    if as_json:
        app_ctx.print_json(ranked.model_dump(mode="json"))
    else:
        render(app_ctx.out, ranked)
