"""The SASRec network: masking, causality, padding invariance, learning a toy sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from recagent.models.sasrec import SASRec, SASRecConfig, left_pad
from recagent.models.sasrec_scorer import SASRecScorer

N_ITEMS = 12


def _model(**overrides) -> SASRec:
    torch.manual_seed(0)
    config = SASRecConfig(**{"dim": 16, "layers": 2, "heads": 2, "max_len": 10, **overrides})
    return SASRec(N_ITEMS, config).eval()


def test_appending_an_item_leaves_earlier_outputs_unchanged() -> None:
    model = _model()
    with torch.no_grad():
        short = model(torch.tensor([[3, 7, 1, 9]]))
        longer = model(torch.tensor([[3, 7, 1, 9, 4]]))
    torch.testing.assert_close(longer[:, :4], short, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(longer[:, 4], short[:, 3])


def test_left_padding_does_not_change_the_output() -> None:
    model = _model()
    with torch.no_grad():
        bare = model(torch.tensor([[5, 2, 8]]))
        padded = model(torch.tensor([[0, 0, 0, 5, 2, 8], [6, 1, 11, 3, 3, 2]]))
    torch.testing.assert_close(padded[:1, 3:], bare, atol=1e-5, rtol=1e-5)


def test_explicit_attention_matches_the_fused_kernel() -> None:
    model = _model()
    seq = torch.tensor([[0, 0, 4, 5, 6], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        fused = model.hidden(seq)[0]
        explicit, weights = model.hidden(seq, need_weights=True)
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-5)
    assert len(weights) == 2
    # no attention on padding, none on the future
    assert weights[-1][0, :, 4, :2].abs().max() == 0
    assert weights[-1][1, :, 2, 3:].abs().max() == 0


def test_last_position_shortcut_matches_the_full_pass() -> None:
    model = _model()
    seq = torch.tensor([[0, 0, 4, 5, 6], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    with torch.no_grad():
        full = model.hidden(seq)[0][:, -1]
        last = model.hidden(seq, last_only=True)[0]
        _, weights = model.hidden(seq, need_weights=True, last_only=True)
    torch.testing.assert_close(last, full, atol=1e-5, rtol=1e-5)
    assert weights[-1].shape == (3, 2, 1, 5)  # (B, heads, the last query, keys)


@pytest.mark.parametrize("seq", [[[7]], [[0, 0, 0]], [[0, 0, 9]]])
def test_short_and_fully_padded_rows_stay_finite(seq: list[list[int]]) -> None:
    model = _model()
    with torch.no_grad():
        hidden = model(torch.tensor(seq))
    assert torch.isfinite(hidden).all()


def test_scorer_scores_are_finite_for_short_and_empty_histories() -> None:
    model = _model()
    counts = np.arange(N_ITEMS + 1)
    scorer = SASRecScorer(model, [f"i{i}" for i in range(1, N_ITEMS + 1)], counts)
    scores = scorer.score_batch([np.array([4]), np.array([], dtype=np.int64), np.arange(1, 13)])
    assert scores.shape == (3, N_ITEMS + 1)
    assert np.isneginf(scores[:, 0]).all()
    assert np.isfinite(scores[:, 1:]).all()
    # an empty history falls back to training popularity
    assert scores[1, 1:].argmax() + 1 == N_ITEMS
    assert np.isfinite(scorer.score([])[1:]).all()
    assert np.isfinite(scorer.score(["i3"], ["i1", "i2"])).all()


def test_histories_longer_than_max_len_read_their_last_items() -> None:
    model = _model()
    scorer = SASRecScorer(model, [f"i{i}" for i in range(1, N_ITEMS + 1)], np.ones(N_ITEMS + 1))
    long = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    both = scorer.score_batch([long, long[-10:]])
    np.testing.assert_allclose(both[0], both[1], atol=1e-5)


@pytest.mark.parametrize("loss", ["full-ce", "sampled-softmax", "bce"])
def test_learns_a_toy_sequence(loss: str) -> None:
    """A fixed cycle 1 -> 2 -> ... -> 6 -> 1: after training, every next item is first."""
    model = _model(loss=loss, negatives=4, dropout=0.0, layers=1).train()
    cycle = torch.tensor([[1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5]])
    seq, targets = cycle[:, :-1], cycle[:, 1:]
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        optimizer.zero_grad()
        model.loss(seq, targets, generator).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model.logits(model(seq)).argmax(-1)
    assert predicted.tolist() == targets.tolist()


def test_left_pad_keeps_the_last_items() -> None:
    out = left_pad([np.array([1, 2, 3, 4]), np.array([5]), np.array([], dtype=np.int64)], 3)
    assert out.tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0]]
    assert left_pad([np.array([], dtype=np.int64)], 3).tolist() == [[0]]


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="must divide"):
        SASRecConfig(dim=10, heads=3)
    with pytest.raises(ValidationError):
        SASRecConfig(loss="softmax")
    with pytest.raises(ValidationError):
        SASRecConfig(hidden=3)
