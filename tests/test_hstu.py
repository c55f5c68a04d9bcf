"""HSTU: causality, padding, the bias and time-bucket known answers, the layer against a naive
loop, the loss's known answer, a checkpoint round trip, and learning a toy sequence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recagent.models.hstu import (
    HSTU,
    HSTUConfig,
    HSTULayer,
    HSTUTrainConfig,
    position_bias_index,
    time_buckets,
)
from recagent.models.recipe import sampled_softmax
from recagent.models.sequential import SequenceScorer

N_ITEMS = 12


def _model(**overrides) -> HSTU:
    torch.manual_seed(0)
    values = {"dim": 16, "layers": 2, "heads": 2, "qk_dim": 8, "v_dim": 8, "max_len": 10}
    return HSTU(N_ITEMS, HSTUConfig(**{**values, **overrides})).eval()


def _times(n: int, start: int = 1000) -> torch.Tensor:
    """n + 1 increasing timestamps (history and request time) with uneven gaps."""
    return torch.tensor([[start + 37 * i * i for i in range(n + 1)]])


@pytest.mark.parametrize("j", [2, 3, 4])
def test_a_later_item_or_time_leaves_earlier_outputs_unchanged(j: int) -> None:
    model = _model()
    seq, times = torch.tensor([[3, 7, 1, 9, 4]]), _times(5)
    with torch.no_grad():
        base = model(seq, times)
        changed_item = seq.clone()
        changed_item[0, j] = 11
        after_item = model(changed_item, times)
        # output i reads times up to t_{i+1}: changing t_j moves outputs >= j - 1 only
        changed_time = times.clone()
        changed_time[0, j:] += 5000
        after_time = model(seq, changed_time)
    torch.testing.assert_close(after_item[:, :j], base[:, :j], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(after_item[:, j], base[:, j])
    torch.testing.assert_close(after_time[:, : j - 1], base[:, : j - 1], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(after_time[:, j - 1], base[:, j - 1])


def test_padding_and_padded_times_leave_outputs_unchanged() -> None:
    model = _model()
    seq, times = torch.tensor([[5, 2, 8]]), _times(3)
    with torch.no_grad():
        bare = model(seq, times)
        pad = torch.tensor([[0, 0, 0, 5, 2, 8]])
        padded_times = torch.cat([torch.tensor([[0, 0, 0]]), times], dim=1)
        padded = model(pad, padded_times)
        junk_times = padded_times.clone()
        junk_times[0, :3] = torch.tensor([99999, 5, 123456789])
        junk = model(pad, junk_times)
    torch.testing.assert_close(padded[:, 3:], bare, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(junk[:, 3:], bare, atol=1e-6, rtol=1e-6)
    assert padded[:, :3].abs().max() == 0  # padded slots stay zero


def test_batch_rows_are_independent_and_permutable() -> None:
    model = _model()
    seq = torch.tensor([[0, 0, 4, 5, 6], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    times = torch.cat([_times(5, 0), _times(5, 50), _times(5, 7)])
    with torch.no_grad():
        out = model(seq, times)
        perm = torch.tensor([2, 0, 1])
        permuted = model(seq[perm], times[perm])
    torch.testing.assert_close(permuted, out[perm], atol=1e-6, rtol=1e-6)


def test_position_bias_is_toeplitz() -> None:
    index = position_bias_index(4, max_len=10)
    assert index.tolist() == [[9, 10, 11, 12], [8, 9, 10, 11], [7, 8, 9, 10], [6, 7, 8, 9]]
    layer = HSTULayer(HSTUConfig(dim=8, qk_dim=4, v_dim=4, max_len=10, time_bias=False))
    bias = layer.bias(4, None, torch.device("cpu"))[0, 0]
    for i in range(4):
        for j in range(4):
            assert bias[i, j] == layer.pos_w[10 - 1 + j - i]


def test_time_buckets_known_answers() -> None:
    dt = torch.tensor([0, 1, -1, 2, 60, 1000, 86400, -86400, 10**60 // 10**50])
    assert time_buckets(dt).tolist() == [0, 0, 0, 2, 13, 22, 37, 37, 76]
    assert time_buckets(torch.tensor([2**62])).item() == 128  # clamped to the last bucket


def test_time_bias_uses_the_next_items_time() -> None:
    layer = HSTULayer(HSTUConfig(dim=8, qk_dim=4, v_dim=4, max_len=10, position_bias=False))
    model = HSTU(N_ITEMS, layer.config)
    model.layers[0] = layer
    times = torch.tensor([[0, 60, 1000]])  # two items at 0 and 60 s; the request at 1000 s
    seen: list[torch.Tensor] = []
    layer.register_forward_hook(lambda _m, args, _out: seen.append(args[2]))
    model(torch.tensor([[3, 4]]), times)
    bias = layer.bias(2, seen[0], torch.device("cpu"))[0, 0]
    w = layer.ts_w
    assert bias[0, 0] == w[13] and bias[1, 0] == w[22] and bias[1, 1] == w[22]


def test_layer_with_zero_uvqk_returns_x_plus_the_output_bias() -> None:
    config = HSTUConfig(dim=8, heads=2, qk_dim=4, v_dim=4, max_len=6)
    layer = HSTULayer(config).eval()
    with torch.no_grad():
        layer.uvqk.zero_()
        layer.out.bias.normal_()
    x = torch.randn(2, 5, 8)
    allowed = torch.ones(2, 1, 5, 5, dtype=torch.bool).tril()
    y, _ = layer(x, allowed, torch.randint(0, 129, (2, 5, 5)))
    torch.testing.assert_close(y, x + layer.out.bias)


def test_layer_matches_a_naive_loop() -> None:
    torch.manual_seed(1)
    config = HSTUConfig(dim=6, heads=2, qk_dim=3, v_dim=4, max_len=5, dropout=0.0)
    layer = HSTULayer(config).eval().double()
    x = torch.randn(1, 3, 6, dtype=torch.float64)
    times = torch.tensor([[10, 40, 400, 9000]])
    allowed = torch.ones(1, 1, 3, 3, dtype=torch.bool).tril()
    buckets = time_buckets(times[:, 1:, None] - times[:, None, :-1])
    with torch.no_grad():
        y, _ = layer(x, allowed, buckets)
        expected = torch.zeros_like(x)
        for i in range(3):
            normed_i = F.layer_norm(x[0, i], (6,))
            u_i = F.silu(normed_i @ layer.uvqk)[:8]
            o_i = torch.zeros(8, dtype=torch.float64)
            for h in range(2):
                q = F.silu(normed_i @ layer.uvqk)[16 + 3 * h : 16 + 3 * h + 3]
                for j in range(i + 1):
                    normed_j = F.layer_norm(x[0, j], (6,))
                    proj = F.silu(normed_j @ layer.uvqk)
                    k, v = proj[22 + 3 * h : 22 + 3 * h + 3], proj[8 + 4 * h : 8 + 4 * h + 4]
                    bucket = math.floor(
                        math.log(max(abs(int(times[0, i + 1] - times[0, j])), 1)) / 0.301
                    )
                    rab = layer.pos_w[5 - 1 + j - i] + layer.ts_w[min(bucket, 128)]
                    a = F.silu(q @ k + rab) / 5
                    o_i[4 * h : 4 * h + 4] += a * v
            expected[0, i] = x[0, i] + layer.out(u_i * F.layer_norm(o_i, (8,)))
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-6)


def test_attention_scaled_by_the_keys_a_query_sees() -> None:
    """`attention_scale=keys` divides query i's weights by its i + 1 visible keys instead of
    the constant N (a mean over the history instead of a sum over N slots)."""
    torch.manual_seed(2)
    base = HSTUConfig(dim=8, heads=2, qk_dim=4, v_dim=4, max_len=6, dropout=0.0)
    constant = HSTULayer(base).eval()
    keys = HSTULayer(base.model_copy(update={"attention_scale": "keys"})).eval()
    keys.load_state_dict(constant.state_dict())
    x = torch.randn(1, 4, 8)
    allowed = torch.ones(1, 1, 4, 4, dtype=torch.bool).tril()
    with torch.no_grad():
        _, a_constant = constant(x, allowed, None)
        _, a_keys = keys(x, allowed, None)
    seen = torch.arange(1, 5, dtype=torch.float32)[:, None]  # query i sees i + 1 keys
    torch.testing.assert_close(a_keys, a_constant * 6 / seen)


def test_outputs_and_item_vectors_are_unit_length() -> None:
    model = _model()
    with torch.no_grad():
        out = model(torch.tensor([[0, 3, 4, 5], [1, 2, 3, 4]]))
    norms = out[0, 1:].norm(dim=-1).tolist() + out[1].norm(dim=-1).tolist()
    assert norms == pytest.approx([1.0] * 7, abs=1e-6)
    assert model.item_vectors()[1:].norm(dim=-1).detach().numpy() == pytest.approx(1.0, abs=1e-6)


def test_loss_with_identical_item_vectors_is_ln_one_plus_the_valid_negatives() -> None:
    n_items, negatives = 6, 40
    hidden = torch.randn(5, 4)
    weight = torch.ones(n_items + 1, 4)
    targets = torch.tensor([1, 2, 3, 4, 5])
    loss = sampled_softmax(
        hidden, targets, weight, negatives, torch.Generator().manual_seed(3), temperature=0.05
    )
    drawn = torch.randint(1, n_items + 1, (negatives,), generator=torch.Generator().manual_seed(3))
    valid = (drawn[None, :] != targets[:, None]).sum(1).double()  # colliding negatives excluded
    assert loss.item() == pytest.approx(torch.log1p(valid).mean().item(), rel=1e-5)


def test_scorer_reads_times_and_works_without_them() -> None:
    model = _model()
    scorer = SequenceScorer(model, [f"i{i}" for i in range(1, N_ITEMS + 1)], np.ones(13), "hstu")
    histories = [np.array([3, 4, 5]), np.array([7])]
    times = [np.array([10, 20, 30, 5000]), np.array([0, 86400])]
    timed = scorer.score_batch(histories, times)
    untimed = scorer.score_batch(histories)
    assert timed.shape == (2, N_ITEMS + 1) and np.isneginf(timed[:, 0]).all()
    assert np.isfinite(timed[:, 1:]).all() and np.isfinite(untimed[:, 1:]).all()
    assert not np.allclose(timed, untimed)
    with torch.no_grad():
        direct = model.score_last(torch.tensor([[3, 4, 5]]), torch.tensor([[10, 20, 30, 5000]]))
    np.testing.assert_allclose(timed[0], direct[0].numpy(), rtol=1e-5, atol=1e-5)
    assert [i for i, _ in scorer.attended(["i3", "i4", "i5"], top=2)] != []


def test_learns_a_toy_sequence() -> None:
    """A fixed cycle 1 -> 2 -> ... -> 6 -> 1: after training, every next item is first."""
    model = _model(dropout=0.0, layers=1, negatives=6, max_len=12).train()
    cycle = torch.tensor([[1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6]])
    times = torch.arange(12)[None] * 100  # aligned with the window: item t at 100 t s
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        optimizer.zero_grad()
        model.batch_loss(cycle, times, generator).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        scores = torch.stack(
            [model.score_last(cycle[:, : t + 1], times[:, : t + 2])[0] for t in range(11)]
        )
    assert scores.argmax(-1).tolist() == cycle[0, 1:].tolist()


def test_presets_and_training_defaults() -> None:
    from recagent.models.registry import spec

    hstu = spec("hstu")
    large = hstu.config("ml-1m-large")
    assert (large.layers, large.heads, large.qk_dim, large.dim, large.max_len) == (
        8,
        2,
        25,
        50,
        200,
    )
    base = hstu.config("ml-1m")
    assert (base.layers, base.heads, base.negatives, base.temperature) == (2, 1, 128, 0.05)
    assert (base.loss, large.loss) == ("sampled-softmax", "sampled-softmax")  # the reference
    assert HSTUConfig().loss == "full-ce"  # chosen on ML-100k valid
    options = HSTUTrainConfig()
    assert (options.lr, options.batch_size, options.weight_decay) == (1e-3, 128, 0.0)
