"""LRURec: the parallel scan against the recurrence, the parallel and recurrent forms agree,
causality, padding, the ring and gamma initialisation, the last-state shortcut and its
explanation weights, a checkpoint round trip, and learning a toy sequence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recagent.models.lrurec import LRURec, LRURecConfig, LRURecTrainConfig, ring_init, scan
from recagent.models.sequential import SequenceScorer

N_ITEMS = 12


def _model(**overrides) -> LRURec:
    torch.manual_seed(0)
    values = {"dim": 16, "layers": 2, "max_len": 12, "dropout": 0.0, "lru_dropout": 0.0}
    return LRURec(N_ITEMS, LRURecConfig(**{**values, **overrides})).eval()


def _naive(b: torch.Tensor, log_lam: torch.Tensor) -> torch.Tensor:
    lam, h = torch.exp(log_lam), torch.zeros_like(b[:, 0])
    out = []
    for t in range(b.shape[1]):
        h = lam * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 8, 13, 64])
def test_the_parallel_scan_equals_the_recurrence(length: int) -> None:
    gen = torch.Generator().manual_seed(length)
    b = torch.complex(torch.randn(2, length, 5, generator=gen), torch.randn(2, length, 5))
    log_lam = torch.complex(-torch.rand(5, generator=gen), 6 * torch.rand(5, generator=gen))
    torch.testing.assert_close(scan(b, log_lam), _naive(b, log_lam), atol=1e-5, rtol=1e-5)


def test_the_parallel_and_recurrent_forms_agree() -> None:
    model = _model()
    seq = torch.tensor([[0, 0, 0, 3, 7, 1, 9, 4], [5, 2, 8, 8, 1, 11, 12, 6]])
    with torch.no_grad():
        parallel = model.encode(seq)
        recurrent = model.recurrent(seq)
        last, _ = model.encode_last(seq)
    torch.testing.assert_close(parallel[0, 3:], recurrent[0, 3:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(parallel[1], recurrent[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last, parallel[:, -1], atol=1e-5, rtol=1e-5)
    assert recurrent[0, :3].abs().max() == 0  # padded slots stay empty


@pytest.mark.parametrize("j", [1, 3, 5])
def test_a_later_item_leaves_earlier_outputs_unchanged(j: int) -> None:
    model = _model()
    seq = torch.tensor([[3, 7, 1, 9, 4, 2, 6]])
    changed = seq.clone()
    changed[0, j] = 11
    with torch.no_grad():
        base, after = model.encode(seq), model.encode(changed)
    torch.testing.assert_close(after[:, :j], base[:, :j], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(after[:, j], base[:, j])


def test_left_padding_and_batch_order_change_nothing() -> None:
    model = _model()
    with torch.no_grad():
        bare = model.encode(torch.tensor([[5, 2, 8]]))
        padded = model.encode(torch.tensor([[0, 0, 0, 0, 0, 5, 2, 8]]))
        seq = torch.tensor([[0, 0, 4, 5, 6], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
        out = model.encode(seq)
        perm = torch.tensor([2, 0, 1])
        permuted = model.encode(seq[perm])
        scores = model.score_last(seq)
        alone = torch.cat(
            [model.score_last(seq[i : i + 1, 5 - n :]) for i, n in enumerate([3, 5, 1])]
        )
    torch.testing.assert_close(padded[:, 5:], bare, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted, out[perm], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(scores, alone, atol=1e-4, rtol=1e-5)
    assert torch.isneginf(scores[:, 0]).all()


def test_the_ring_and_gamma_initialisation() -> None:
    torch.manual_seed(0)
    nu_log, theta_log, gamma_log = ring_init(4000, 0.8, 0.99)
    radius = torch.exp(-torch.exp(nu_log))
    assert radius.min() >= 0.8 - 1e-6 and radius.max() <= 0.99 + 1e-6
    # uniform on the ring's area: the median radius^2 is halfway between r_min^2 and r_max^2
    assert radius.square().median().item() == pytest.approx((0.8**2 + 0.99**2) / 2, abs=0.01)
    theta = torch.exp(theta_log)
    assert theta.min() >= 0 and theta.max() <= 2 * math.pi
    torch.testing.assert_close(torch.exp(gamma_log), torch.sqrt(1 - radius**2))
    with pytest.raises(ValueError, match="r_min"):
        LRURecConfig(r_min=0.9, r_max=0.8)


def test_gamma_keeps_a_long_constant_input_at_unit_scale() -> None:
    """With gamma = sqrt(1 - |lambda|^2) a unit random input's state keeps ~unit variance
    however close |lambda| is to 1 (without it, the state grows like 1 / (1 - |lambda|))."""
    torch.manual_seed(0)
    nu_log, _, gamma_log = ring_init(256, 0.95, 0.99)
    log_lam = torch.complex(-torch.exp(nu_log), torch.zeros(256))
    gamma = torch.exp(gamma_log)
    b = torch.complex(torch.randn(64, 400, 256), torch.zeros(64, 400, 256))
    scaled = scan(b * gamma, log_lam)[:, -1].real.var().item()
    raw = scan(b, log_lam)[:, -1].real.var().item()
    assert 0.7 < scaled < 1.3 and raw > 10
    # and the layer applies it: b = gamma * (B x), real and imaginary parts alike
    layer = _model().lru[0]
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        b_layer = layer.inputs(x, torch.ones(2, 3, dtype=torch.bool))
        re, im = layer.in_proj(x).split(layer.size, dim=-1)
        gamma_layer = torch.exp(layer.params_log[2])
    torch.testing.assert_close(b_layer, torch.complex(re * gamma_layer, im * gamma_layer))
    assert not torch.allclose(gamma_layer, torch.ones_like(gamma_layer))


def test_the_explanation_weights_are_each_items_share_of_the_last_state() -> None:
    model = _model()
    seq = torch.tensor([[0, 0, 3, 7, 1, 9]])
    with torch.no_grad():
        share = model.attention_last(seq)[0]
        # the share of slot j: |C lambda^(L-1-j) b_j| over the last layer's input
        x, real = model.embed(seq)
        x = model.ff[0](model.lru[0](x, real))
        layer = model.lru[-1]
        b = layer.inputs(x, real)[0]
        lam = torch.exp(layer.log_lambda()[0])
        c = layer.out_proj.weight
        norms = []
        for j in range(6):
            part = lam ** (5 - j) * b[j]
            norms.append((c @ torch.cat([part.real, part.imag])).norm().item())
    expected = torch.tensor(norms) * real[0]
    torch.testing.assert_close(share, expected / expected.sum(), atol=1e-5, rtol=1e-4)
    assert share[:2].abs().max() == 0 and share.sum().item() == pytest.approx(1.0)


def test_loss_is_full_softmax_at_every_position() -> None:
    model = _model()
    items = torch.tensor([[0, 0, 4, 5, 6, 7]])
    with torch.no_grad():
        loss = model.batch_loss(items)
        h = model.encode(items[:, :-1])[0, 2:]  # positions that predict 5, 6, 7
        logits = model.logits(h)[:, 1:]
        expected = torch.nn.functional.cross_entropy(logits, torch.tensor([5, 6, 7]) - 1)
    torch.testing.assert_close(loss, expected)


def test_learns_a_toy_sequence() -> None:
    """A fixed cycle 1 -> 2 -> ... -> 6 -> 1: after training, every next item is first."""
    model = _model(layers=1).train()
    cycle = torch.tensor([[1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6]])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(100):
        optimizer.zero_grad()
        model.batch_loss(cycle).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        scores = torch.stack([model.score_last(cycle[:, : t + 1])[0] for t in range(11)])
    assert scores.argmax(-1).tolist() == cycle[0, 1:].tolist()


def test_scorer_explains_with_the_items_that_moved_the_state() -> None:
    model = _model()
    scorer = SequenceScorer(model, [f"i{i}" for i in range(1, N_ITEMS + 1)], np.ones(N_ITEMS + 1))
    top = scorer.attended(["i3", "i4", "i5", "i3"], top=2)
    assert len(top) == 2 and {i for i, _ in top} <= {"i3", "i4", "i5"}
    assert top[0][1] >= top[1][1] > 0
    row = scorer.score(["i3", "i4"])
    assert row.shape == (N_ITEMS + 1,) and np.isneginf(row[0]) and np.isfinite(row[1:]).all()


def test_presets_and_training_defaults() -> None:
    from recagent.models.registry import spec

    config = spec("lrurec").config("paper")
    assert (config.dim, config.layers, config.max_len, config.state_size) == (64, 2, 200, 128)
    assert (config.dropout, LRURecConfig().dropout) == (0.2, 0.5)  # chosen on valid
    assert (config.r_min, config.r_max) == (0.8, 0.99)
    options = LRURecTrainConfig()
    assert (options.lr, options.weight_decay) == (1e-3, 0.01)
