"""`recagent knowledge`: what an LLM knows about each item (KAR-lite), built once and kept in the
workspace, so the index can embed it and the sequence models can read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from recagent.commands.context import AppContext, DatasetOpt, get_context
from recagent.data.catalog import Item
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.evals.summary import load_prices
from recagent.knowledge import PROMPT
from recagent.knowledge.attach import item_hashes
from recagent.knowledge.store import KnowledgeStore, store_path
from recagent.prompts.registry import PromptRegistry

if TYPE_CHECKING:  # the build loads LangChain: only when a build runs
    from recagent.knowledge.build import BuildReport, Job


app = typer.Typer(
    help="Item knowledge written by an LLM (KAR): build it, see how much there is, read it.",
    no_args_is_help=True,
)
TYPICAL_OUTPUT_TOKENS = 120
"""Output tokens an answer is assumed to take before any was stored (for the estimate)."""


def chosen_items(dataset: Dataset, items: int | None, ids: Path | None) -> list[Item]:
    """`--ids FILE` (one item id per line), else the `--items` most popular, else all."""
    catalog = dataset.catalog
    if ids is not None:
        try:
            wanted = [w.strip() for w in ids.read_text(encoding="utf-8-sig").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {ids}: {exc}") from None
        wanted = list(dict.fromkeys(w for w in wanted if w and not w.startswith("#")))
        missing = [w for w in wanted if w not in catalog]
        if missing:
            raise ConfigError(
                f"{ids}: {len(missing)} id(s) not in {dataset.name!r} (first: "
                f"{', '.join(missing[:5])})"
            )
        return [catalog[w] for w in wanted]
    counts = dataset.popularity[1:]
    order = np.argsort(-counts, kind="stable")  # most popular first, ties in catalog order
    if items is not None:
        order = order[:items]
    return [catalog[catalog.id_at(int(i) + 1)] for i in order]


def estimate(jobs: list[Job], store: KnowledgeStore) -> tuple[int, int]:
    """(input, output) tokens the jobs will take, roughly: 4 characters a token in, and the
    stored answers' mean out."""
    done = [a.output_tokens for a in store.answers() if a.output_tokens]
    per_answer = int(np.mean(done)) if done else TYPICAL_OUTPUT_TOKENS
    chars = sum(len(j.prompt.text) + len(j.prompt.system or "") for j in jobs)
    return chars // 4, per_answer * len(jobs)


@app.command("build")
def build_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    items: Annotated[
        int | None,
        typer.Option(min=1, help="Only the N most popular items \\[default: every item]."),
    ] = None,
    ids: Annotated[
        Path | None,
        typer.Option(help="Only the items listed in this file, one item id per line."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Requests in flight \\[default: \\[llm] concurrency]."),
    ] = None,
    retry: Annotated[
        bool,
        typer.Option("--retry", help="Ask again for items the model could not describe."),
    ] = False,
    llm: Annotated[
        str | None, typer.Option(help="openai:<model>, or leave to \\[llm] spec.")
    ] = None,
    reread: Annotated[
        bool,
        typer.Option(
            "--reread",
            help="Only read the stored answers again (after a change to how answers are read "
            "or to the aspects); asks the model nothing.",
        ),
    ] = False,
) -> None:
    """Ask the LLM, once per item, what it knows (prompt `item_knowledge`, editable with
    `recagent prompts edit item_knowledge`).

    Only the title, year and categories are sent. Answers are saved as they arrive: Ctrl-C or
    a crash loses nothing, and the same command goes on where it stopped. A changed prompt or
    item is asked again; nothing else is. Then use a template with the knowledge, e.g.
    `recagent index build --template title_genres_knowledge --rebuild`."""
    from recagent.agent.llm import make_chat_model, resolve_llm
    from recagent.knowledge.build import KnowledgeBuilder, reread_answers, template_aspects

    app_ctx = get_context(ctx)
    if items is not None and ids is not None:
        raise ConfigError("use --items or --ids, not both")
    settings = app_ctx.settings
    name = app_ctx.dataset_name(dataset)
    data = Dataset.load(app_ctx.workspace, name)
    if reread:
        store = KnowledgeStore.of(app_ctx.workspace, name)
        changed = reread_answers(store, template_aspects(_registry(app_ctx)))
        app_ctx.out.print(f"{changed} stored answers read differently now")
        return
    choice = resolve_llm(llm, settings.llm)
    if choice.mode != "openai" or not choice.model:
        raise ConfigError(
            "knowledge build needs an LLM: set OPENAI_BASE_URL (and OPENAI_API_KEY) or pass "
            "--llm openai:<model>"
        )
    store = KnowledgeStore.of(app_ctx.workspace, name)
    registry = _registry(app_ctx)
    builder = KnowledgeBuilder(
        make_chat_model(choice, settings.llm),
        choice.model,
        registry,
        settings.llm,
        store,
        settings.agent.domain,
    )
    chosen = chosen_items(data, items, ids)
    jobs, cached = builder.plan(chosen, retry=retry)
    tokens_in, tokens_out = estimate(jobs, store)
    price = load_prices(app_ctx.workspace.root / "prices.yaml").get(choice.model)
    cost = (
        f"about ${(tokens_in * price['input'] + tokens_out * price['output']) / 1000:.2f}"
        if price
        else f"no price known for {choice.model} (add it to prices.yaml)"
    )
    app_ctx.err.print(
        f"{len(chosen)} items of {name!r}: {cached} answered before, {len(jobs)} to ask "
        f"{escape(choice.label)} (~{tokens_in:,} input + ~{tokens_out:,} output tokens, "
        f"{cost})"
    )
    if not jobs:
        return
    report = builder.run(jobs, app_ctx.reporter, workers)
    _print_report(app_ctx.out, report)


def _registry(app_ctx: AppContext) -> PromptRegistry:
    return PromptRegistry(app_ctx.workspace.prompts_dir)


def _print_report(out: Console, report: BuildReport) -> None:
    per = report.output_tokens / report.answered if report.answered else 0.0
    out.print(
        f"asked {report.asked}: {report.ok} described, {report.unknown} unknown to the model, "
        f"{report.unparsed} unreadable, {report.failed} failed (asked again next run); "
        f"{report.input_tokens:,} input + {report.output_tokens:,} output tokens "
        f"({per:.0f} out per answer), {report.seconds:.0f} s"
    )


@app.command("status")
def status_cmd(ctx: typer.Context, dataset: DatasetOpt = None) -> None:
    """How many items have knowledge, from which model and prompt, and what it cost."""
    app_ctx = get_context(ctx)
    name = app_ctx.dataset_name(dataset)
    data = Dataset.load(app_ctx.workspace, name)
    path = store_path(app_ctx.workspace, name)
    if not path.is_file():
        app_ctx.out.print(f"no knowledge for {name!r} yet: run `recagent knowledge build`")
        return
    store = KnowledgeStore(path)
    current = store.current(item_hashes(list(data.catalog)))
    prompt_hash = _registry(app_ctx).get(PROMPT).hash
    by_status: dict[str, int] = {}
    for answer in current.values():
        by_status[answer.status] = by_status.get(answer.status, 0) + 1
    answers = store.answers()
    models = sorted({a.model for a in answers})
    older = sum(1 for a in current.values() if a.prompt_hash != prompt_hash)
    timed = [a for a in answers if a.seconds]
    summary = {
        "dataset": name,
        "items": data.n_items,
        "with_knowledge": by_status.get("ok", 0),
        "unknown_to_the_model": by_status.get("unknown", 0),
        "unreadable": by_status.get("unparsed", 0),
        "from_an_older_prompt": older,
        "models": models,
        "answers_stored": len(answers),
        "output_tokens_per_answer": round(
            float(np.mean([a.output_tokens for a in answers])) if answers else 0.0, 1
        ),
        "seconds_per_answer": round(
            float(np.median([a.seconds for a in timed])) if timed else 0.0, 2
        ),
        "store": str(path),
    }
    app_ctx.out.print_json(json.dumps(summary))


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="The item's id.")],
    dataset: DatasetOpt = None,
) -> None:
    """What the model said about one item."""
    app_ctx = get_context(ctx)
    name = app_ctx.dataset_name(dataset)
    data = Dataset.load(app_ctx.workspace, name)
    if item_id not in data.catalog:
        raise ConfigError(f"no item {item_id!r} in {name!r}")
    item = data.catalog[item_id]
    path = store_path(app_ctx.workspace, name)
    answer = (
        KnowledgeStore(path).current(item_hashes([item])).get(item_id) if path.is_file() else None
    )
    if answer is None:
        app_ctx.out.print(f"{escape(item.label)}: no knowledge yet")
        return
    app_ctx.out.print_json(
        json.dumps(
            {
                "item": item.label,
                "status": answer.status,
                "aspects": answer.aspects,
                "model": answer.model,
                "prompt_hash": answer.prompt_hash,
            }
        )
    )


__all__ = ["app", "chosen_items"]
