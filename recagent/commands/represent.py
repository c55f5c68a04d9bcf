"""`recagent train item-encoder` (NoteLLM-lite) and `recagent eval item-to-item`.

The encoder refines each item's text vector with what people consume together
(recagent.represent.encoder); when it beats the raw text vectors on valid, its vectors are
indexed as the co-watch space that "more like this" searches. `eval item-to-item` measures
the raw text vectors, the encoder and item-CF co-occurrence on held-out pairs, per popularity
slice, and saves the result under <workspace>/runs/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from recagent.commands.context import DatasetOpt, get_context
from recagent.commands.train import JsonOpt, ReplaceOpt, TimeLimitOpt
from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError, ConfigError
from recagent.represent.encoder_config import EncoderConfig
from recagent.workspace import atomic_write_json

if TYPE_CHECKING:
    from recagent.represent.blend import BlendChoice

_DEFAULTS = EncoderConfig()


def _default(name: str) -> str:
    return f"\\[default: {getattr(_DEFAULTS, name)}]"


def train_item_encoder_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    alpha: Annotated[
        list[float] | None,
        typer.Option(
            help="Weight of the genre loss (repeat to sweep; the best on valid is kept) "
            f"{_default('alphas')}."
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help=f"Most epochs per alpha {_default('epochs')}.", min=1)
    ] = None,
    hidden: Annotated[
        int | None, typer.Option(help=f"Projection width {_default('hidden')}.", min=8)
    ] = None,
    lr: Annotated[float | None, typer.Option(help=f"Learning rate {_default('lr')}.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help=f"Pairs per InfoNCE batch {_default('batch_size')}.", min=2)
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    time_limit: TimeLimitOpt = None,
    replace: ReplaceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the NoteLLM-lite item encoder: text vectors tuned on what people co-watch.

    Each item's text (the index template, embedded by the configured embedder) goes through
    a small trainable projection, trained with in-batch InfoNCE on item pairs from the
    training split (items a person rated 4+ within 10 positions of each other, 1/N per
    person, top 20 partners per item) plus alpha x a genre-prediction loss. Alpha and the
    stopping epoch are chosen on the valid split's held-out pairs. When the encoder beats
    the raw text vectors there, `similar_items` ("more like X", history) searches a blend of
    the two: text similarity (look-alikes) weighted w, co-watch similarity 1 - w, with w
    chosen on the valid pairs to keep both their recall and their genre overlap (the table
    printed; `[index] similar_space` overrides it). Free-text search keeps the text space.

    Example: recagent train item-encoder --dataset ml-100k
    """
    from recagent.represent.blend import saved_blend
    from recagent.represent.encoder import load_item_encoder, train_item_encoder
    from recagent.represent.space import SimilarSpace, build_similar_index

    app_ctx = get_context(ctx)
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    given = {"epochs": epochs, "hidden": hidden, "lr": lr, "batch_size": batch_size}
    values = {k: v for k, v in {**given, "alphas": alpha}.items() if v is not None}
    try:
        config = EncoderConfig(seed=seed, **values)
    except ValidationError as exc:
        raise ConfigError(f"invalid encoder settings: {exc.errors()[0]['msg']}") from exc
    settings = app_ctx.settings.index
    result = train_item_encoder(
        app_ctx.workspace,
        ds,
        settings,
        config,
        reporter=app_ctx.reporter,
        replace=replace,
        time_limit_s=None if time_limit is None else time_limit * 60,
    )
    encoder = load_item_encoder(app_ctx.workspace, ds, settings)
    decided = SimilarSpace(space="text", why="no encoder was kept")
    if encoder is not None:
        decided = build_similar_index(app_ctx.workspace, ds, settings, encoder, app_ctx.reporter)
    choice = saved_blend(app_ctx.workspace, ds, settings, encoder) if encoder else None
    space = f"{decided.space} ({decided.why})"
    if as_json:
        blend = choice.model_dump() if choice else None
        app_ctx.print_json({**result.model_dump(), "similar_items_space": space, "blend": blend})
        return
    title = f"item encoder on {ds.name} ({result.pairs:,} pairs)"
    table = Table("valid", result.metric, title=title)
    table.add_row("raw text vectors", f"{result.valid['text']:.4f}")
    for a, value in result.sweep.items():
        table.add_row(f"encoder, alpha {a}", f"{value:.4f}")
    app_ctx.out.print(table)
    if choice is not None:
        app_ctx.out.print(_blend_table(choice))
    if result.stopped in ("interrupted", "time_limit"):
        why = "interrupted" if result.stopped == "interrupted" else "time limit reached"
        app_ctx.err.print(f"[yellow]{why}:[/] kept the best epoch so far; untried alphas skipped")
    app_ctx.err.print(
        f"kept alpha {result.alpha} (best epoch {result.best_epoch}, {result.seconds:.0f} s); "
        f"{result.retention.reason}; similar_items searches the {space} space",
        soft_wrap=True,
    )


def _blend_table(choice: BlendChoice) -> Table:
    """The valid table the blend was chosen from: the one-step weights and the chosen one."""
    recall = choice.recall
    table = Table("similar_items ranking", recall, "genre@10", "years@10", title="valid")
    from recagent.represent.blend import settings_grid

    chosen = choice.setting.label
    for setting in settings_grid(int(recall.removeprefix("R@"))):
        label = setting.label
        m = choice.valid.get(label)
        if m is None or not (setting.one_step or label == chosen):
            continue  # the two-step settings tried: in the saved JSON
        cells = [f"{m[recall]:.4f}", f"{m['genre@10']:.3f}", f"{m['years@10']:.1f}"]
        table.add_row(f"{label}{' (chosen)' if label == chosen else ''}", *cells)
    return table


def eval_item_to_item_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    split: Annotated[str, typer.Option(help="valid or test held-out pairs.")] = "test",
    window: Annotated[
        int, typer.Option(help="History items paired with each held-out item.", min=1)
    ] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Item to item: raw text vectors vs the item encoder vs their blend vs item-CF.

    Held-out pairs are a user's valid or test item with each of the `window` items before
    it (never trained on). Reports Recall@10/50/100 overall and by the held-out item's
    training popularity (cold < 5 interactions, low < 50, high), with 95% bootstrap
    intervals over users and each space's paired difference from the raw text vectors; and
    how alike each query item and its top 10 are: genre overlap (Jaccard, 1 = same genres)
    and year distance, so a space that finds co-watched but unlike items shows it. The blend
    is the one `similar_items` searches (text weight chosen on valid). Saved as JSON under
    <workspace>/runs/.

    Example: recagent eval item-to-item --dataset ml-100k
    """
    from recagent.data.pairs import ItemPairs, PairsConfig
    from recagent.evals.runs import new_run_id
    from recagent.represent.blend import blend_scores, choose_blend
    from recagent.represent.encoder import encode, load_item_encoder
    from recagent.represent.item_to_item import (
        GENRE,
        YEARS,
        cooccurrence_scores,
        evaluate_spaces,
        heldout_pairs,
        vector_scores,
    )
    from recagent.represent.text_vectors import text_vectors

    if split not in ("valid", "test"):
        raise ConfigError(f"--split must be valid or test, not {split!r}")
    app_ctx = get_context(ctx)
    ds = Dataset.load(app_ctx.workspace, app_ctx.dataset_name(dataset))
    settings = app_ctx.settings.index
    vectors = text_vectors(app_ctx.workspace, ds, settings, reporter=app_ctx.reporter)
    spaces = [("text", vector_scores(vectors.matrix))]
    encoder = load_item_encoder(app_ctx.workspace, ds, settings)
    if encoder is None:
        app_ctx.err.print(
            "no item encoder trained yet (recagent train item-encoder): text and item-CF only"
        )
    else:
        cowatch = encode(encoder.projection, vectors.matrix)
        spaces.append(("encoder", vector_scores(cowatch)))
        choice = choose_blend(app_ctx.workspace, ds, settings, encoder, app_ctx.reporter)
        blended = blend_scores(vectors.matrix, cowatch, choice.setting)
        spaces.append(("blend", blended))
        app_ctx.err.print(f"blend (chosen on valid): {choice.setting.label}")
    pairs = ItemPairs.load_or_build(app_ctx.workspace, ds, PairsConfig(), train_only=True)
    spaces.append(("item-cf", cooccurrence_scores(pairs.matrix)))
    with app_ctx.reporter.stage(f"ranking held-out {split} pairs in {len(spaces)} spaces", None):
        held_out = heldout_pairs(ds, split, window)  # type: ignore[arg-type]
        results, comparisons = evaluate_spaces(ds, spaces, held_out)
    payload = {
        "kind": "item-to-item",
        "dataset": ds.name,
        "split": split,
        "window": window,
        "embedder": vectors.embedder,
        "spaces": [r.model_dump() for r in results],
        "versus_text": [c.model_dump() for c in comparisons],
    }
    path = app_ctx.workspace.runs_dir / f"{new_run_id()}-item-to-item" / "result.json"
    try:
        atomic_write_json(path, payload)
    except OSError as exc:
        raise ArtifactError(f"cannot write {path}: {exc}") from exc
    if as_json:
        app_ctx.print_json({**payload, "path": str(path)})
        return
    table = Table(
        "space",
        "slice",
        "users",
        "R@10",
        "R@50",
        "R@100",
        "R@50 vs text [95% CI]",
        "genre@10",
        "years@10",
    )
    versus = {c.name: c for c in comparisons}
    for r in results:
        for s, m in r.metrics.items():
            c = versus.get(r.name)
            diff = (
                f"{c.diff[s]:+.4f} [{c.intervals[s][0]:+.4f}, {c.intervals[s][1]:+.4f}]"
                if c
                else ""
            )
            cells = [f"{m[k]:.4f}" for k in ("R@10", "R@50", "R@100")]
            look = [f"{m.get(GENRE, float('nan')):.3f}", f"{m.get(YEARS, float('nan')):.1f}"]
            table.add_row(r.name, s, str(r.users[s]), *cells, diff, *look)
    app_ctx.out.print(table)
    app_ctx.err.print(f"saved {path}")


__all__ = ["eval_item_to_item_cmd", "train_item_encoder_cmd"]
