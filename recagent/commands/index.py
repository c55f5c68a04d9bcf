"""`recagent index ...`: build the vector index of a dataset's items, query it, inspect it."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from recagent.commands.context import AppContext, get_context
from recagent.config import IndexConfig
from recagent.data.constraints import Constraints
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError, RecagentError
from recagent.index.embedders import Embedder, make_embedder
from recagent.index.item_index import Hit
from recagent.index.store import build_index, index_status, open_index
from recagent.index.text import PRESETS


class EmbedderChoice(StrEnum):
    wordllama = "wordllama"
    openai = "openai"
    sentence_transformers = "sentence-transformers"


app = typer.Typer(
    help="Build, query and inspect the vector index of item text.", no_args_is_help=True
)

STORE = "Embedder and store"
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", "-d", help="Dataset name \\[default: from settings].", show_default=False
    ),
]
EmbedderOpt = Annotated[
    EmbedderChoice | None,
    typer.Option(
        help="Text embedder \\[default: index.embedder, wordllama].",
        show_default=False,
        rich_help_panel=STORE,
    ),
]
ChromaUrlOpt = Annotated[
    str | None,
    typer.Option(
        help="Use the Chroma server at this URL (http://host:port) instead of the workspace.",
        rich_help_panel=STORE,
    ),
]
CollectionOpt = Annotated[
    str | None,
    typer.Option(help="Collection name \\[default: recagent-<dataset>].", rich_help_panel=STORE),
]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        help=f"Item text template: a preset ({', '.join(PRESETS)}), an inline Jinja "
        "template, or @file.",
        rich_help_panel=STORE,
    ),
]
ModelPathOpt = Annotated[
    Path | None,
    typer.Option(help="Local sentence-transformers model folder.", rich_help_panel=STORE),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _config(app_ctx: AppContext, **given: Any) -> IndexConfig:
    """The configured index section with the flags that were given on top."""
    updates = {
        k: (v.value if isinstance(v, StrEnum) else v) for k, v in given.items() if v is not None
    }
    try:
        return IndexConfig.model_validate(app_ctx.settings.index.model_dump() | updates)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid index option: {problems}") from exc


@app.command("build")
def build_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    embedder: EmbedderOpt = None,
    chroma_url: ChromaUrlOpt = None,
    collection: CollectionOpt = None,
    template: TemplateOpt = None,
    model_path: ModelPathOpt = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Items per batch.", rich_help_panel=STORE)
    ] = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Build again even if the index is up to date, replacing any other index "
            "in its place.",
        ),
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="If another process is building this index, exit (code 2) saying who, "
            "instead of waiting for it.",
        ),
    ] = False,
) -> None:
    """Embed every item of a dataset and store the vectors in Chroma.

    Examples:

      recagent index build --dataset ml-100k

      recagent index build --template full --rebuild

      recagent index build --chroma-url http://127.0.0.1:8000
    """
    app_ctx = get_context(ctx)
    cfg = _config(
        app_ctx,
        embedder=embedder,
        chroma_url=chroma_url,
        collection=collection,
        template=template,
        st_model_path=model_path,
        batch_size=batch_size,
    )
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    model = make_embedder(cfg)
    # one builder at a time; a second one waits, then finds the index up to date
    with app_ctx.workspace.build_lock(
        "index", ds.name, wait=not no_wait, reporter=app_ctx.reporter
    ):
        _build(app_ctx, ds, cfg, model, rebuild)


def _build(
    app_ctx: AppContext, ds: Dataset, cfg: IndexConfig, model: Embedder, rebuild: bool
) -> None:
    status = index_status(app_ctx.workspace, ds, cfg, model)
    if status.state == "fresh" and not rebuild:
        app_ctx.out.print(
            f"index of {ds.name} is up to date ({escape(status.location)}); "
            "--rebuild to build it again"
        )
        return
    if status.state == "foreign" and not rebuild:
        other = status.meta.dataset if status.meta else "?"
        raise ConfigError(
            f"{status.location} holds the index of another dataset ({other}); "
            "choose another --collection, or pass --rebuild to replace it"
        )
    if status.state in ("stale", "mismatch"):
        reasons = "; ".join(f"{k}: {v}" for k, v in status.problems.items())
        app_ctx.err.print(f"rebuilding ({escape(reasons)})")
    started = time.perf_counter()
    meta = build_index(app_ctx.workspace, ds, cfg, embedder=model, reporter=app_ctx.reporter)
    app_ctx.out.print(
        f"[green]indexed[/] {meta.items:,} items of {ds.name} with {meta.embedder} ({meta.dim}-d, "
        f"template {escape(meta.template_name)}) in {time.perf_counter() - started:.1f}s "
        f"-> {escape(status.location)}"
    )


@app.command("query")
def query_cmd(
    ctx: typer.Context,
    query: Annotated[
        str | None, typer.Argument(help="What to look for, in plain words.", show_default=False)
    ] = None,
    dataset: DatasetOpt = None,
    k: Annotated[int, typer.Option("--k", "-k", help="How many items.")] = 10,
    genre: Annotated[
        list[str] | None,
        typer.Option("--genre", "-g", help="Keep items with any of these genres (repeatable)."),
    ] = None,
    exclude_genre: Annotated[
        list[str] | None,
        typer.Option("--exclude-genre", help="Drop items with these genres (repeatable)."),
    ] = None,
    year_min: Annotated[int | None, typer.Option(help="Released in or after.")] = None,
    year_max: Annotated[int | None, typer.Option(help="Released in or before.")] = None,
    like: Annotated[
        list[str] | None,
        typer.Option(
            "--like", help="Items similar to this item id instead of a text query (repeatable)."
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Items near this user's history instead of a text query.")
    ] = None,
    embedder: EmbedderOpt = None,
    chroma_url: ChromaUrlOpt = None,
    collection: CollectionOpt = None,
    template: TemplateOpt = None,
    model_path: ModelPathOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Items matching a description (or similar to --like items, or near a --user's history).

    Builds the index first when there is none, or when the catalog changed.

    Examples:

      recagent index query "a dark dystopian sci-fi film" --k 5

      recagent index query "funny" --genre animation --year-min 1990 --json

      recagent index query --like 1 --exclude-genre children
    """
    app_ctx = get_context(ctx)
    modes = sum([query is not None, bool(like), user is not None])
    if modes != 1:
        raise ConfigError("give exactly one of: a text query, --like ITEM_ID, --user USER_ID")
    cfg = _config(
        app_ctx,
        embedder=embedder,
        chroma_url=chroma_url,
        collection=collection,
        template=template,
        st_model_path=model_path,
    )
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    try:
        filters = Constraints(
            genres_any=genre or [],
            genres_none=exclude_genre or [],
            year_min=year_min,
            year_max=year_max,
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid filters: {exc.errors()[0]['msg']}") from exc
    history = []
    if user is not None:
        history = ds.user_history(user)
        if not history:
            raise ConfigError(f"unknown user {user!r} in dataset {ds.name} (or no history)")
    with open_index(
        app_ctx.workspace,
        ds,
        cfg,
        reporter=app_ctx.reporter,
        build_if_missing=True,
        rebuild_if_stale=True,
    ) as index:
        if query is not None:
            hits = index.search(query, k, filters)
        elif like:
            hits = index.similar_to_items(like, k, filters)
        else:
            hits = index.similar_to_history(history, k, filters)
    _print_hits(app_ctx, ds, hits, as_json)


def _print_hits(app_ctx: AppContext, ds: Dataset, hits: list[Hit], as_json: bool) -> None:
    rows: list[dict[str, Any]] = []
    for rank, hit in enumerate(hits, start=1):
        item = ds.catalog[hit.item_id]
        rows.append(
            {
                "rank": rank,
                "item_id": item.item_id,
                "title": item.title,
                "year": item.year,
                "genres": list(item.genres),
                "score": round(hit.score, 4),
                "text": hit.text,
                "because_of": hit.because_of,
            }
        )
    if as_json:
        app_ctx.print_json(rows)
        return
    if not rows:
        app_ctx.out.print("no items passed the filters")
        return
    table = Table(
        "#",
        "id",
        "title",
        "genres",
        "score",
        *(["because of"] if any(r["because_of"] for r in rows) else []),
    )
    for r in rows:
        cells = [
            str(r["rank"]),
            r["item_id"],
            escape(ds.catalog[r["item_id"]].label),
            escape(", ".join(r["genres"])),
            f"{r['score']:.3f}",
        ]
        if len(table.columns) > 5:
            cells.append(escape(", ".join(ds.catalog[i].title for i in r["because_of"])))
        table.add_row(*cells)
    app_ctx.out.print(table)


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    embedder: EmbedderOpt = None,
    chroma_url: ChromaUrlOpt = None,
    collection: CollectionOpt = None,
    template: TemplateOpt = None,
    model_path: ModelPathOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Is the index built, and does it match the data and the configuration?"""
    app_ctx = get_context(ctx)
    cfg = _config(
        app_ctx,
        embedder=embedder,
        chroma_url=chroma_url,
        collection=collection,
        template=template,
        st_model_path=model_path,
    )
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    status = index_status(app_ctx.workspace, ds, cfg)
    similar = _similar_space(app_ctx, ds, cfg)
    if as_json:
        app_ctx.print_json({"dataset": ds.name, **status.model_dump(), "similar_space": similar})
        return
    colour = {"fresh": "green", "missing": "yellow"}.get(status.state, "red")
    app_ctx.out.print(
        f"index of {ds.name}: [{colour}]{status.state}[/] ({escape(status.location)})"
    )
    if status.meta:
        m = status.meta
        app_ctx.out.print(
            f"  {m.items:,} items, {m.embedder} ({m.dim}-d), template {escape(m.template_name)}, "
            f"built {m.built_at} by recagent {m.recagent_version}"
        )
    if status.version:
        app_ctx.out.print(f"  live version: {escape(status.version)}")
    for key, value in status.problems.items():
        app_ctx.out.print(f"  {key}: {escape(value)}")
    if status.state == "missing":
        app_ctx.out.print(f"  build it with `recagent index build --dataset {ds.name}`")
    app_ctx.out.print(f"similar items search: {escape(similar)}")


def _similar_space(app_ctx: AppContext, ds: Dataset, cfg: IndexConfig) -> str:
    """Which space `similar_items` searches, and why (see recagent.represent.space)."""
    from recagent.represent.encoder_config import checkpoint_path

    if cfg.similar_space == "text":
        return "the text index (index.similar_space = text)"
    if not checkpoint_path(app_ctx.workspace, ds).is_file():
        return "the text index (no item encoder: `recagent train item-encoder`)"
    from recagent.represent.encoder import load_item_encoder
    from recagent.represent.space import SPACE, decide_space, space_embedder

    try:
        encoder = load_item_encoder(app_ctx.workspace, ds, cfg)
        decided, choice = decide_space(app_ctx.workspace, ds, cfg, encoder, choose=False)
    except RecagentError as exc:
        return f"the text index ({exc})"
    if encoder is None or decided.space == "text":
        return f"the text index ({decided.why})"
    embedder = space_embedder(decided, encoder, choice)
    if embedder is None:  # a blend whose setting is chosen at first use
        return f"the blend of text and co-watch similarity ({decided.why})"
    state = index_status(app_ctx.workspace, ds, cfg, embedder, decided.space).state
    built = "fresh" if state == "fresh" else f"{state}: rebuilt on first use"
    if decided.space == SPACE:
        return f"the co-watch space of {encoder.name} ({decided.why}; {built})"
    return f"the blend of text and co-watch similarity ({decided.why}; {built})"
