"""BERT4Rec: bidirectionality, Cloze masking statistics, padding invariance, the loss's known
answer, scoring that never returns padding, [MASK] or seen items, and learning a toy cycle."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from recagent.models.bert4rec import (
    IGNORE,
    SPEC,
    BERT4Rec,
    BERT4RecConfig,
    BERT4RecTrainConfig,
)
from recagent.models.padding import left_pad
from recagent.models.sequential import SequenceScorer
from recagent.models.windows import WindowData, Windows

N_ITEMS = 12


def _model(**overrides) -> BERT4Rec:
    torch.manual_seed(0)
    values = {"dim": 16, "layers": 2, "heads": 2, "ff_dim": 32, "max_len": 10}
    return BERT4Rec(N_ITEMS, BERT4RecConfig(**{**values, **overrides})).eval()


def test_a_right_context_item_changes_the_masked_output() -> None:
    model = _model()
    m = model.mask_id
    with torch.no_grad():
        base = model.encode(torch.tensor([[3, m, 7, 1]]))[0]
        changed = model.encode(torch.tensor([[3, m, 9, 1]]))[0]
    assert not torch.allclose(base[0, 1], changed[0, 1])  # bidirectional: the right side counts


def test_masked_inputs_labels_and_padding() -> None:
    model = _model(mask_prob=0.5, last_item_mask=0.0)
    items = torch.tensor([[0, 0, 0, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 0, 0, 0, 9]])
    for seed in range(20):
        inputs, labels = model.cloze(items, torch.Generator().manual_seed(seed))
        chosen = labels != IGNORE
        assert (inputs[chosen] == model.mask_id).all()
        assert (labels[chosen] == items[chosen]).all()
        assert (inputs[~chosen] == items[~chosen]).all()
        assert not chosen[items == 0].any()  # padding is never masked
        assert chosen.sum(1).tolist() == [2, 4, 1]  # round(0.5 * length), at least 1


def test_the_masked_share_is_rho_over_many_draws() -> None:
    model = _model(mask_prob=0.2, max_predictions=40, last_item_mask=0.0, max_len=60)
    items = torch.randint(1, N_ITEMS + 1, (2000, 37))
    _, labels = model.cloze(items, torch.Generator().manual_seed(0))
    per_position = (labels != IGNORE).double().mean(0)
    assert (labels != IGNORE).double().mean().item() == pytest.approx(round(0.2 * 37) / 37)
    assert per_position.min() > 0.15 and per_position.max() < 0.25  # spread over positions


def test_last_item_mask_masks_only_the_last_item() -> None:
    model = _model(last_item_mask=1.0)
    items = torch.tensor([[0, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
    inputs, labels = model.cloze(items, torch.Generator().manual_seed(0))
    assert inputs.tolist() == [[0, 2, 3, 4, model.mask_id], [1, 2, 3, 4, model.mask_id]]
    assert labels[:, :-1].eq(IGNORE).all() and labels[:, -1].tolist() == [5, 5]


def test_extra_padding_leaves_the_mask_logits_unchanged() -> None:
    model = _model()
    with torch.no_grad():
        bare = model.score_last(torch.tensor([[5, 2, 8]]))
        padded = model.score_last(torch.tensor([[0, 0, 0, 0, 5, 2, 8], [1, 2, 3, 4, 5, 6, 7]]))
    torch.testing.assert_close(padded[:1], bare, atol=1e-5, rtol=1e-5)


def test_uniform_logits_give_log_n_items() -> None:
    model = _model(last_item_mask=0.0)
    with torch.no_grad():
        model.item_emb.weight.zero_()
        model.out_bias.zero_()
    loss = model.batch_loss(torch.tensor([[1, 2, 3, 4, 5]]), None, torch.Generator())
    assert loss.item() == pytest.approx(math.log(N_ITEMS), rel=1e-6)


def test_scores_exclude_padding_mask_and_seen_items() -> None:
    model = _model()
    scorer = SequenceScorer(model, [f"i{i}" for i in range(1, N_ITEMS + 1)], np.ones(13), "b")
    scores = scorer.score_batch([np.array([3, 4]), np.arange(1, 13)])
    assert scores.shape == (2, N_ITEMS + 1)  # no column for [MASK]
    assert np.isneginf(scores[:, 0]).all() and np.isfinite(scores[:, 1:]).all()
    top = [i for i, _ in scorer.recommend(["i3", "i4"], N_ITEMS, exclude=["i3", "i4"])]
    assert len(top) == N_ITEMS - 2 and "i3" not in top and "i4" not in top
    long = np.arange(1, 13)  # longer than max_len - 1: the newest 9 items are read
    np.testing.assert_allclose(scores[1], scorer.score_batch([long[-9:]])[0], atol=1e-5)
    assert len(scorer.attended(["i3", "i4", "i5"], top=2)) == 2


def test_learns_a_toy_cycle_to_hit_at_1() -> None:
    """Cycle 1 -> 2 -> 3 -> 1 ...: the [MASK] after any prefix is predicted exactly."""
    model = _model(dropout=0.0, layers=1, mask_prob=0.3, last_item_mask=0.3).train()
    cycle = torch.tensor([[1, 2, 3] * 3])
    prefixes = left_pad([cycle[0, :n].numpy() for n in range(2, 10)], 9)  # every length
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        model.batch_loss(prefixes, None, generator).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for t in range(1, 9):
            scores = model.score_last(cycle[:1, :t])
            assert scores.argmax(-1).item() == cycle[0, t].item()
            assert F.softmax(scores[0, 1:], -1).max() > 0.5


def test_an_epoch_holds_each_window_copies_times_each_masked_anew() -> None:
    lengths = np.array([3, 5, 5, 7, 2, 9])
    items = left_pad([np.arange(1, n + 1) for n in lengths], 10)
    for copies in (1, 4):
        data = WindowData(Windows(items, None, lengths), copies)
        batches = data.epoch(np.random.default_rng(0), 5)
        assert np.bincount(np.concatenate(batches)).tolist() == [copies] * len(lengths)
        assert all(len(b) <= 5 for b in batches)
    model = _model(mask_prob=0.5, last_item_mask=0.0)
    copies_of_one = data.batch(np.full(8, 5))[0]  # one 9-item window, 8 times in a batch
    _, labels = model.cloze(copies_of_one, torch.Generator().manual_seed(0))
    assert (labels != IGNORE).sum(1).tolist() == [4] * 8  # round(0.5 * 9) each
    assert len({tuple(row) for row in labels.tolist()}) > 4  # masked independently


def test_training_data_takes_the_copies_option() -> None:
    dataset = SimpleNamespace(
        split=SimpleNamespace(train_sequences=lambda: [np.arange(1, 8), np.arange(2, 5)])
    )
    config = BERT4RecConfig(max_len=10)
    data = SPEC.data(dataset, config, BERT4RecTrainConfig(copies=3), None)
    assert len(data) == 2 and data.copies == 3
    assert len(np.concatenate(data.epoch(np.random.default_rng(0), 4))) == 6


def test_default_patience_outlasts_a_few_hundred_steps_on_a_small_dataset() -> None:
    """ml-latest-small (610 users, one 200-item window each at least): one copy per epoch
    was 5 steps, and patience 20 stopped training after ~100 steps, far from converged."""
    options = BERT4RecTrainConfig()
    steps_per_epoch = math.ceil(610 * options.copies / options.batch_size)
    assert options.patience * steps_per_epoch >= 800


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="must divide"):
        BERT4RecConfig(dim=10, heads=3)
    with pytest.raises(ValidationError):
        BERT4RecConfig(mask_prob=0.0)
