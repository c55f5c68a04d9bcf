"""NoteLLM-lite: the item encoder learns who co-watches what, where text cannot tell.

The fixture hides six groups of items behind titles that say nothing about the group: people
only ever watch inside one group, so the raw text vectors rank group mates no better than
strangers, and anything that does must have learned it from the pairs."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.errors import ArtifactError
from recagent.represent.encoder import (
    checkpoint_path,
    encode,
    load_item_encoder,
    train_item_encoder,
)
from recagent.represent.encoder_config import EncoderConfig
from recagent.represent.item_to_item import (
    compare,
    cooccurrence_scores,
    evaluate_spaces,
    heldout_pairs,
    per_user,
    target_ranks,
    train_counts,
    vector_scores,
)
from recagent.represent.space import SPACE, open_cowatch_index
from recagent.represent.text_vectors import text_vectors
from recagent.workspace import Workspace
from tests.conftest import HashEmbedder, write_ml100k

GROUPS, PER_GROUP = 6, 10
WORDS = [
    *("amber", "birch", "cedar", "delta", "ember", "flint"),
    *("grove", "harbor", "iris", "juniper", "kestrel", "lumen"),
]
FAST = EncoderConfig(
    epochs=60, select_k=10, alphas=[0.0, 0.5], lr=1e-2, batch_size=64, hidden=64, eval_every=2
)


def group_of(item: int) -> int:
    return (item - 1) // PER_GROUP


@pytest.fixture
def hidden_groups(tmp_path: Path, workspace: Workspace) -> Dataset:
    rng = np.random.default_rng(3)
    n = GROUPS * PER_GROUP
    items = [
        (
            i,
            f"{' '.join(rng.choice(WORDS, 2, replace=False))} {i} (1990)",
            [1 + int(rng.integers(0, 4))],
        )
        for i in range(1, n + 1)
    ]
    ratings = []
    for user in range(1, 121):
        group = user % GROUPS
        members = rng.permutation(np.arange(group * PER_GROUP + 1, (group + 1) * PER_GROUP + 1))
        for t, item in enumerate(members[:8]):
            ratings.append((user, int(item), 5.0, 1000 * user + t))
    folder = write_ml100k(tmp_path / "groups", ratings, items)
    return prepare(PrepareConfig(dataset="ml-100k", source=folder, name="groups"), workspace)


def _group_gap(vectors: np.ndarray, dataset: Dataset) -> float:
    """Mean cosine to group mates minus mean cosine to everyone else."""
    ids = [int(dataset.catalog.id_at(i)) for i in range(1, dataset.n_items + 1)]
    groups = np.array([group_of(i) for i in ids])
    sims = vectors[1:] @ vectors[1:].T
    same = groups[:, None] == groups[None, :]
    np.fill_diagonal(same, False)
    other = groups[:, None] != groups[None, :]
    return float(sims[same].mean() - sims[other].mean())


def test_heldout_pairs_come_from_valid_and_test_only(hidden_groups: Dataset) -> None:
    split = hidden_groups.split
    for name in ("valid", "test"):
        pairs = heldout_pairs(hidden_groups, name, window=3)  # type: ignore[arg-type]
        cases = {c.user_idx: c for c in split.cases(name)}  # type: ignore[arg-type]
        assert len(pairs) == 3 * len(cases)
        for q, t, u in zip(pairs.queries, pairs.targets, pairs.users, strict=True):
            assert t == cases[u].target and q in cases[u].history[-3:] and q != t
    # a perfect space (group mates identical) ranks every held-out target near the top
    ids = [int(hidden_groups.catalog.id_at(i)) for i in range(1, hidden_groups.n_items + 1)]
    perfect = np.zeros((hidden_groups.n_items + 1, GROUPS), dtype=np.float32)
    perfect[np.arange(1, hidden_groups.n_items + 1), [group_of(i) for i in ids]] = 1.0
    ranks = target_ranks(vector_scores(perfect), heldout_pairs(hidden_groups, "test"))
    assert ranks.max() <= PER_GROUP - 1  # ties count against the target: at most 9 mates


def test_encoder_learns_co_watching_the_text_cannot_show(
    hidden_groups: Dataset, workspace: Workspace
) -> None:
    embedder = HashEmbedder(32)
    raw = text_vectors(workspace, hidden_groups, IndexConfig(), embedder).matrix
    assert abs(_group_gap(raw, hidden_groups)) < 0.1

    result = train_item_encoder(workspace, hidden_groups, IndexConfig(), FAST, embedder=embedder)
    assert result.won_on_valid and result.valid["encoder"] > result.valid["text"] + 0.2
    assert set(result.sweep) == {"0.0", "0.5"} and result.retention.kept == "new"
    encoder = load_item_encoder(workspace, hidden_groups, IndexConfig(), embedder)
    assert encoder is not None and encoder.dim == 32
    learned = encode(encoder.projection, raw)
    assert _group_gap(learned, hidden_groups) > 0.3
    # the Embedder face gives the same vectors from text
    item = hidden_groups.catalog.at(1)
    from recagent.index.text import load_template

    one = encoder.embed([load_template(IndexConfig().template).render(item)])
    assert np.allclose(one[0], learned[1], atol=1e-5)

    # on held-out test pairs it beats the raw text, and item-CF (the reference) does too
    results, versus = evaluate_spaces(
        hidden_groups,
        [
            ("text", vector_scores(raw)),
            ("encoder", vector_scores(learned)),
            ("cf", cooccurrence_scores(_pairs(workspace, hidden_groups))),
        ],
        heldout_pairs(hidden_groups, "test"),
    )
    assert results[1].metrics["all"]["R@10"] > results[0].metrics["all"]["R@10"] + 0.3
    assert versus[0].name == "encoder" and versus[0].baseline == "text"
    # R@50 saturates on this small catalog: the paired interval at R@10 must exclude zero
    pairs = heldout_pairs(hidden_groups, "test")
    counts = train_counts(hidden_groups)
    mine = per_user(target_ranks(vector_scores(learned), pairs), pairs, counts)
    text = per_user(target_ranks(vector_scores(raw), pairs), pairs, counts)
    assert compare("encoder", mine, "text", text, k=10).intervals["all"][0] > 0


def _pairs(workspace: Workspace, dataset: Dataset):  # type: ignore[no-untyped-def]
    from recagent.data.pairs import ItemPairs, PairsConfig

    return ItemPairs.load_or_build(workspace, dataset, PairsConfig(), train_only=True).matrix


def test_a_worse_run_keeps_the_better_encoder_and_other_embedders_are_refused(
    hidden_groups: Dataset, workspace: Workspace
) -> None:
    embedder = HashEmbedder(32)
    train_item_encoder(workspace, hidden_groups, IndexConfig(), FAST, embedder=embedder)
    first = load_item_encoder(workspace, hidden_groups, IndexConfig(), embedder)
    weak = FAST.model_copy(update={"epochs": 1, "lr": 1e-5, "alphas": [0.0]})
    again = train_item_encoder(workspace, hidden_groups, IndexConfig(), weak, embedder=embedder)
    assert again.retention.kept == "old" and "worse" in again.retention.reason
    kept = load_item_encoder(workspace, hidden_groups, IndexConfig(), embedder)
    assert first is not None and kept is not None and kept.encoder_id == first.encoder_id
    with pytest.raises(ArtifactError, match="retrain"):
        load_item_encoder(workspace, hidden_groups, IndexConfig(), HashEmbedder(32, "test:other"))


def test_cowatch_space_serves_similar_items_and_follows_a_retrained_encoder(
    hidden_groups: Dataset, workspace: Workspace
) -> None:
    from recagent.index.store import index_status, open_index
    from recagent.tools.base import ToolContext
    from recagent.tools.recall import SimilarItemsArgs, similar_items

    embedder = HashEmbedder(32)
    config = IndexConfig()
    assert open_cowatch_index(workspace, hidden_groups, config, embedder) is None  # none yet
    train_item_encoder(workspace, hidden_groups, config, FAST, embedder=embedder)
    text = open_index(workspace, hidden_groups, config, embedder=embedder, build_if_missing=True)
    calls = embedder.calls
    cowatch = open_cowatch_index(workspace, hidden_groups, config, embedder)
    assert cowatch is not None
    assert embedder.calls == calls  # its index re-uses the texts embedded for training
    try:
        ctx = ToolContext(dataset=hidden_groups, index=text, similar_index=cowatch)
        out = similar_items(SimilarItemsArgs(item_ids=["1"], k=5), ctx)
        found = [h for h in out.items if h.how.startswith("liked by the same people")]  # type: ignore[attr-defined]
        assert len(found) == 5
        assert sum(group_of(int(h.item.item_id)) == 0 for h in found) >= 4
        # explanations say what the space means: the same people liked them, not look-alikes
        from recagent.agent.llm_agent import evidence_line
        from recagent.tools.base import COWATCH

        first = found[0].item.item_id
        assert any(ev.detail == COWATCH for ev in ctx.candidates.evidence(first))
        assert evidence_line(ctx, first).startswith("people who liked")
        # free-text search stays in the text space: the text index is untouched
        assert text.meta.embedder == embedder.name
    finally:
        cowatch.close()
        text.close()
    old_name = load_item_encoder(workspace, hidden_groups, config, embedder).name  # type: ignore[union-attr]
    update = {"seed": 1, "alphas": [0.0]}
    train_item_encoder(
        workspace,
        hidden_groups,
        config,
        FAST.model_copy(update=update),
        embedder=embedder,
        replace=True,
    )
    new = load_item_encoder(workspace, hidden_groups, config, embedder)
    assert new is not None and new.name != old_name
    assert index_status(workspace, hidden_groups, config, new, SPACE).state == "mismatch"
    rebuilt = open_cowatch_index(workspace, hidden_groups, config, embedder)
    assert rebuilt is not None and rebuilt.meta.embedder == new.name
    rebuilt.close()


def test_cli_trains_the_encoder_and_evaluates_item_to_item(hidden_groups: Dataset, cli) -> None:  # type: ignore[no-untyped-def]
    bad = cli("eval", "item-to-item", "--dataset", "groups", "--split", "train")
    assert bad.exit_code == 2 and "valid or test" in bad.output and "Traceback" not in bad.output
    assert "no item encoder" in cli("index", "status", "--dataset", "groups").output
    none = cli("eval", "item-to-item", "--dataset", "groups", "--json")
    assert none.exit_code == 0, none.output
    assert [s["name"] for s in json.loads(none.stdout)["spaces"]] == ["text", "item-cf"]
    trained = cli(
        "train",
        "item-encoder",
        "--dataset",
        "groups",
        "--epochs",
        "20",
        "--alpha",
        "0",
        "--lr",
        "0.003",
        "--batch-size",
        "64",
        "--json",
    )
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    assert result["sweep"].keys() == {"0.0"} and result["pairs"] > 0
    assert result["similar_items_space"].startswith("blend")  # text and co-watch, blended
    status = cli("index", "status", "--dataset", "groups", "--json")
    assert json.loads(status.stdout)["similar_space"].startswith("the blend of text and co-watch")
    evaluated = cli("eval", "item-to-item", "--dataset", "groups", "--json")
    payload = json.loads(evaluated.stdout)
    assert [s["name"] for s in payload["spaces"]] == ["text", "encoder", "blend", "item-cf"]
    assert Path(payload["path"]).is_file()
    assert payload["versus_text"][0]["diff"]["all"] > 0


def test_withheld_items_are_stratified_and_never_trained_on(
    hidden_groups: Dataset, workspace: Workspace
) -> None:
    from recagent.represent.item_to_item import train_counts, withheld_items, withheld_pairs

    hidden = withheld_items(hidden_groups, 0.1, seed=0)
    assert len(hidden) == hidden_groups.n_items // 10
    assert np.array_equal(hidden, withheld_items(hidden_groups, 0.1, seed=0))
    assert not np.array_equal(hidden, withheld_items(hidden_groups, 0.1, seed=1))
    counts = train_counts(hidden_groups)
    ranks = np.argsort(np.argsort(counts[1:], kind="stable"))  # popularity rank of each item
    assert sorted(ranks[hidden - 1] // 10) == list(range(len(hidden)))  # one per block
    pairs = withheld_pairs(hidden_groups, hidden, window=3)
    assert len(pairs) and np.isin(pairs.targets, hidden).all()
    assert not np.isin(pairs.queries, hidden).any()
    full = train_item_encoder(
        workspace, hidden_groups, IndexConfig(), FAST, embedder=HashEmbedder(32)
    )
    cold = train_item_encoder(
        workspace,
        hidden_groups,
        IndexConfig(),
        FAST,
        embedder=HashEmbedder(32),
        replace=True,
        withhold=hidden,
    )
    from recagent.data.pairs import ItemPairs

    edges = ItemPairs.load_or_build(
        workspace, hidden_groups, FAST.pairs, train_only=True, name="encoder-pairs"
    ).matrix.tocoo()
    touching = np.isin(edges.row, hidden) | np.isin(edges.col, hidden)
    assert full.pairs == edges.nnz and cold.pairs == int((~touching).sum()) < full.pairs


def test_services_use_the_cowatch_space_only_when_it_won_and_is_wanted(
    hidden_groups: Dataset, workspace: Workspace
) -> None:
    from recagent.app import Services
    from recagent.config import load_settings
    from recagent.index.store import open_index

    embedder = HashEmbedder(32)
    text = open_index(
        workspace, hidden_groups, IndexConfig(), embedder=embedder, build_if_missing=True
    )

    def services(**index: str) -> Services:
        settings = load_settings(home=workspace.root)
        settings.index = settings.index.model_copy(update=index)
        made = Services(workspace, settings, hidden_groups)
        made.index = text  # the text index built with the test embedder
        return made

    try:
        assert services().similar_index is None  # no encoder yet
        train_item_encoder(workspace, hidden_groups, IndexConfig(), FAST, embedder=embedder)
        # the same encoder, had it not beaten the text vectors on valid
        path = checkpoint_path(workspace, hidden_groups)
        payload = torch.load(path, weights_only=True)
        torch.save({**payload, "won_on_valid": False}, path)
        assert services().similar_index is None
        torch.save(payload, path)
        chosen = services().similar_index  # the blend of text and the encoder's space
        assert chosen is not None and chosen.meta.embedder.startswith("blend:notellm-lite:")
        chosen.close()
        chosen = services(similar_space="cowatch").similar_index
        assert chosen is not None and chosen.meta.embedder.startswith("notellm-lite:")
        chosen.close()
        assert services(similar_space="text").similar_index is None
    finally:
        text.close()


class _StopAt:
    """A reporter whose progress callback is interrupted (as Ctrl-C would) at epoch `n`."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.epochs = 0

    @contextmanager
    def stage(self, description: str, total: float | None = None):  # type: ignore[no-untyped-def]
        def advance(k: int = 1, **fields: object) -> None:
            if description.startswith("training"):
                self.epochs += k
                if self.epochs >= self.n:
                    raise KeyboardInterrupt

        yield advance


def test_ctrl_c_keeps_the_best_epoch_so_far_or_writes_nothing(
    hidden_groups: Dataset, workspace: Workspace
) -> None:
    embedder = HashEmbedder(32)
    with pytest.raises(KeyboardInterrupt):  # before any epoch was evaluated
        train_item_encoder(
            workspace, hidden_groups, IndexConfig(), FAST, embedder=embedder, reporter=_StopAt(1)
        )
    assert not checkpoint_path(workspace, hidden_groups).exists()
    result = train_item_encoder(
        workspace, hidden_groups, IndexConfig(), FAST, embedder=embedder, reporter=_StopAt(9)
    )
    assert result.stopped == "interrupted" and result.best_epoch in (2, 4, 6, 8)
    assert list(result.sweep) == ["0.0"]  # the next alpha was never started
    assert checkpoint_path(workspace, hidden_groups).is_file()
    assert load_item_encoder(workspace, hidden_groups, IndexConfig(), embedder) is not None
