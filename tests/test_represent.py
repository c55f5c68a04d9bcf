"""Item representations: cached text vectors, the contrastive loss, the projection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.represent.contrastive import Projection, info_nce
from recagent.represent.text_vectors import text_vectors
from recagent.workspace import Workspace
from tests.conftest import HashEmbedder


def test_identical_embeddings_give_ln_batch() -> None:
    for batch in (2, 7, 64):
        same = torch.ones(batch, 8)
        for symmetric in (False, True):
            loss = info_nce(same, same.clone(), log_scale=math.log(20), symmetric=symmetric)
            assert loss.item() == pytest.approx(math.log(batch), rel=1e-6)


def test_info_nce_rewards_matching_pairs_and_weights() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=gen)
    matched = info_nce(a, a + 0.01 * torch.randn(16, 8, generator=gen), math.log(20))
    shuffled = info_nce(a, a[torch.randperm(16, generator=gen)], math.log(20))
    assert matched.item() < 0.1 < math.log(16) / 2 < shuffled.item()
    # a zero weight removes a pair's term
    w = torch.ones(16)
    w[0] = 0
    b = a.clone()
    b[0] = -a[0]
    assert info_nce(a, b, math.log(20), weights=w).item() < info_nce(a, b, math.log(20)).item()
    with pytest.raises(ValueError, match="one shape"):
        info_nce(a, a[:, :4], 0.0)


def test_projection_starts_as_identity_and_round_trips(tmp_path) -> None:
    torch.manual_seed(0)
    same = Projection(8, 8)
    x = torch.randn(5, 8)
    assert torch.allclose(same(x), x)  # residual, last layer zeroed: identity at start
    wider = Projection(8, 16)
    assert wider(x).shape == (5, 16)
    torch.save(wider.state_dict(), tmp_path / "p.pt")
    loaded = Projection(8, 16)
    loaded.load_state_dict(torch.load(tmp_path / "p.pt", weights_only=True))
    assert torch.equal(loaded(x), wider(x))


def test_text_vectors_are_cached_per_text_and_embedder(
    recall_dataset: Dataset, workspace: Workspace
) -> None:
    embedder = HashEmbedder(dim=32)
    first = text_vectors(workspace, recall_dataset, IndexConfig(), embedder=embedder)
    assert first.matrix.shape == (recall_dataset.n_items + 1, 32)
    assert not first.matrix[0].any()
    assert np.allclose(np.linalg.norm(first.matrix[1:], axis=1), 1.0)
    # row item_idx holds that item's text: the two horror titles are close
    near = (
        first.matrix[recall_dataset.catalog.idx("3")]
        @ first.matrix[recall_dataset.catalog.idx("4")]
    )
    assert near > 0.2
    calls = embedder.calls
    again = text_vectors(workspace, recall_dataset, IndexConfig(), embedder=embedder)
    assert embedder.calls == calls and np.array_equal(again.matrix, first.matrix)
    assert again.key == first.key
    # another embedder has its own cache
    other = HashEmbedder(32, name="test:other")
    assert text_vectors(workspace, recall_dataset, IndexConfig(), embedder=other).key != first.key
    assert other.calls == 1


def test_only_changed_texts_are_embedded_again(
    recall_dataset: Dataset, workspace: Workspace
) -> None:
    seen: list[str] = []

    class Counting(HashEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            seen.extend(texts)
            return super().embed(texts)

    embedder = Counting(32)
    text_vectors(workspace, recall_dataset, IndexConfig(template="{{ label }}"), embedder)
    assert len(seen) == recall_dataset.n_items
    seen.clear()
    # a template that renders one item differently: only that item is embedded again
    one_changed = "{{ label }}{% if item_id == '3' %} Scary.{% endif %}"
    text_vectors(workspace, recall_dataset, IndexConfig(template=one_changed), embedder)
    assert seen == ["Haunted House of Horror (1980) Scary."]


def test_notellm_prompt_front_end_through_an_embeddings_endpoint(
    recall_dataset: Dataset, workspace: Workspace, openai_server, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The faithful front end: NoteLLM's compression prompt sent to an OpenAI-compatible
    embeddings endpoint, each item's answer cached."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = IndexConfig(
        embedder="openai",
        template="notellm",
        openai_base_url=openai_server.url,
        openai_model="local",
        openai_dimensions=openai_server.dim,
    )
    first = text_vectors(workspace, recall_dataset, config)
    sent = [t for r in openai_server.requests for t in r["input"]]
    assert len(sent) == recall_dataset.n_items
    assert all(t.endswith('The compression word is: "') for t in sent)
    assert any('"title": "Space Wars"' in t for t in sent)
    again = text_vectors(workspace, recall_dataset, config)
    assert sum(len(r["input"]) for r in openai_server.requests) == len(sent)  # all cached
    assert np.array_equal(again.matrix, first.matrix)


def test_projection_dropout_only_while_training() -> None:
    torch.manual_seed(0)
    p = Projection(8, 16, dropout=0.5)
    x = torch.randn(4, 8)
    assert not torch.equal(p(x), p(x))  # training: a fresh mask each call
    p.eval()
    assert torch.equal(p(x), p(x))
