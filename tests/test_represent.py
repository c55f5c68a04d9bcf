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


def test_text_vectors_are_cached_per_catalog_and_embedder(
    recall_dataset: Dataset, workspace: Workspace
) -> None:
    embedder = HashEmbedder(dim=32)
    first = text_vectors(workspace, recall_dataset, IndexConfig(), embedder=embedder)
    assert first.matrix.shape == (recall_dataset.n_items + 1, 32)
    assert not first.matrix[0].any()
    assert np.allclose(np.linalg.norm(first.matrix[1:], axis=1), 1.0)
    calls = embedder.calls
    again = text_vectors(workspace, recall_dataset, IndexConfig(), embedder=embedder)
    assert embedder.calls == calls and np.array_equal(again.matrix, first.matrix)
    other = text_vectors(
        workspace, recall_dataset, IndexConfig(), embedder=HashEmbedder(32, name="test:other")
    )
    assert other.key != first.key
    # row item_idx holds that item's text
    idx = recall_dataset.catalog.idx("3")
    assert "haunted" in recall_dataset.catalog["3"].title.lower()
    assert first.matrix[idx] @ first.matrix[recall_dataset.catalog.idx("4")] > 0.2
