"""BST: what changes a score and what does not, batch scoring equal to single scoring, the
training samples (no valid or test item, history before the target), BCE's known answer,
learning a toy set to AUC 1, and reranking: a perfect reranker reaches the retriever's
recall@pool."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recagent.metrics import summarize
from recagent.models.base import Reranks
from recagent.models.bst import BST, BSTConfig, BSTScorer
from recagent.models.bst_data import BSTData, gap_ids, position_gaps, samples
from recagent.models.evaluation import rank_cases
from recagent.models.popularity import PopularityScorer

N_ITEMS = 12
IDS = [f"i{i}" for i in range(1, N_ITEMS + 1)]


def _model(**overrides) -> BST:
    torch.manual_seed(0)
    values = {"dim": 12, "gap_dim": 4, "heads": 2, "ff_dim": 16, "mlp": [16], "history": 5}
    return BST(N_ITEMS, BSTConfig(**{**values, **overrides})).eval()


def _scorer(model: BST, pool: int = 5) -> BSTScorer:
    retriever = PopularityScorer(IDS, np.arange(N_ITEMS + 1))
    return BSTScorer(model, IDS, retriever, pool)


def test_score_follows_target_and_history_not_padding() -> None:
    model = _model()
    hist = torch.tensor([[0, 0, 3, 4, 5]])
    gaps = position_gaps(hist)
    with torch.no_grad():
        base = model(hist, gaps, torch.tensor([7]))[0]
        other_target = model(hist, gaps, torch.tensor([8]))[0]
        other_history = model(torch.tensor([[0, 0, 3, 9, 5]]), gaps, torch.tensor([7]))[0]
        junk_gaps = gaps.clone()
        junk_gaps[0, :2] = torch.tensor([40, 77])  # gap ids in padded slots
        padded_junk = model(hist, junk_gaps, torch.tensor([7]))[0]
    assert base != other_target and base != other_history
    torch.testing.assert_close(padded_junk, base)


def test_k_candidates_in_one_batch_equal_each_alone() -> None:
    scorer = _scorer(_model())
    history, candidates = np.array([2, 3, 4]), np.array([1, 5, 6, 9, 12])
    times = [np.array([100, 200, 5000, 90000])]
    batch = scorer.score_candidates_batch([history], [candidates], times)[0]
    alone = [
        scorer.score_candidates_batch([history], [np.array([c])], times)[0][0] for c in candidates
    ]
    np.testing.assert_allclose(batch, alone, rtol=1e-5, atol=1e-6)
    two = scorer.score_candidates_batch([history, np.array([7])], [candidates, candidates[:2]])
    np.testing.assert_allclose(
        two[0], scorer.score_candidates_batch([history], [candidates])[0], rtol=1e-5, atol=1e-6
    )
    assert len(two[1]) == 2


def test_full_ranking_reranks_the_retrievers_pool_only() -> None:
    scorer = _scorer(_model(), pool=4)
    assert isinstance(scorer, Reranks)
    history = np.array([12, 11])  # popularity's best two: excluded from the pool
    row = scorer.score_batch([history])[0]
    pool = [10, 9, 8, 7]  # the retriever's best unseen items
    rest = [i for i in range(1, N_ITEMS + 1) if i not in pool and i not in history]
    assert row[pool].min() > row[rest].max()
    np.testing.assert_allclose(
        row[pool], scorer.score_candidates_batch([history], [np.array(pool)])[0], rtol=1e-6
    )
    assert list(np.argsort(-row[rest])) == sorted(range(len(rest)), key=lambda i: -rest[i])


def test_gap_known_answers() -> None:
    hist = torch.tensor([[0, 0, 4, 5, 6]])
    assert position_gaps(hist).tolist() == [[0, 0, 128 + 3, 128 + 2, 128 + 1]]
    gaps = gap_ids(hist, [np.array([86340, 86398, 86400])], np.array([87400]))
    assert gaps.tolist() == [[0, 0, 23, 22, 22]]  # gaps 1060, 1002, 1000 s
    gaps = gap_ids(hist, [np.array([0, 86340, 87398])], np.array([87400]))
    assert gaps.tolist() == [[0, 0, 37, 23, 2]]  # gaps 87400, 1060, 2 s


def test_bce_of_a_zero_logit_is_ln_2() -> None:
    model = _model(time_dropout=0.0)
    with torch.no_grad():
        model.mlp[-1].weight.zero_()
        model.mlp[-1].bias.zero_()
    hist = torch.tensor([[0, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
    loss = model.batch_loss(
        hist, position_gaps(hist), torch.tensor([6, 7]), torch.tensor([1.0, 0.0])
    )
    assert loss.item() == pytest.approx(math.log(2))


def test_training_samples_hold_no_valid_or_test_item(tiny_sasrec) -> None:
    ds = tiny_sasrec.dataset
    prefixes, targets, times, request = samples(ds, history=5, positives_per_user=None)
    assert times is not None and request is not None
    p = 0
    for u in range(1, ds.interactions.n_users + 1):
        full = ds.interactions.sequence(u)
        train = full[:-2] if len(full) >= 3 else full  # valid and test are the last two
        stamps = ds.interactions.timestamps_of(u)
        for k in range(1, len(train)):
            assert list(prefixes[p]) == list(train[:k]) and targets[p] == train[k]
            assert request[p] == stamps[k] and (times[p] < request[p]).all()
            assert list(times[p]) == list(stamps[max(0, k - 5) : k])
            p += 1
    assert p == len(targets)  # nothing else: no valid or test interaction is a sample


def test_epoch_draws_hard_and_uniform_negatives_never_the_positive() -> None:
    hist = torch.tensor([[0, 1, 2], [1, 2, 3]])
    data = BSTData(
        hist, position_gaps(hist), np.array([3, 4]), np.array([[5, 6], [7, 8]]), N_ITEMS, 4, 0.5
    )
    batches = data.epoch(np.random.default_rng(0), 64)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(len(data)))
    h, _, cand, label = data.batch(rows)
    assert label.sum() == 2 and len(label) == 10
    for prefix, positive in ((0, 3), (1, 4)):
        negatives = cand[(label == 0) & (h[:, -1] == hist[prefix, -1])]
        assert positive not in negatives.tolist()
        hard = {5, 6} if prefix == 0 else {7, 8}
        assert len(hard & set(negatives.tolist())) >= 1


def test_learns_a_toy_set_to_auc_1() -> None:
    """Clicks follow the history's last item (next = last + 1); the rest are not clicked."""
    model = _model(dropout=0.0, time_dropout=0.0).train()
    rng = np.random.default_rng(0)
    last = torch.as_tensor(rng.integers(1, N_ITEMS, 64))
    hist = torch.stack(
        [torch.zeros_like(last), torch.zeros_like(last), last.flip(0), (last % 11) + 1, last], 1
    )
    gaps = position_gaps(hist)
    pos = last + 1
    neg = torch.as_tensor((last.numpy() + rng.integers(2, N_ITEMS - 1, 64)) % N_ITEMS + 1)
    neg = torch.where(neg == pos, neg % N_ITEMS + 1, neg)
    h, g = torch.cat([hist, hist]), torch.cat([gaps, gaps])
    cand, label = torch.cat([pos, neg]), torch.cat([torch.ones(64), torch.zeros(64)])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        model.batch_loss(h, g, cand, label).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(h, g, cand)[0]
    positives, negatives = logits[:64], logits[64:]
    auc = (positives[:, None] > negatives[None, :]).double().mean().item()
    assert auc > 0.99


def test_a_perfect_reranker_reaches_the_retrievers_recall_at_pool(tiny_sasrec) -> None:
    ds = tiny_sasrec.dataset
    counts = ds.popularity + np.arange(ds.n_items + 1) * 1e-3  # no ties
    retriever = PopularityScorer(ds.catalog.item_ids, counts)
    cases = ds.split.cases("valid")
    targets = {tuple(c.history.tolist()): c.target for c in cases}

    class Oracle(BSTScorer):
        def score_candidates_batch(self, histories, candidates, times=None):
            return [
                (np.asarray(c) == targets[tuple(h.tolist())]).astype(np.float32)
                for h, c in zip(histories, candidates, strict=True)
            ]

    model = BST(ds.n_items, BSTConfig(dim=8, gap_dim=8, heads=2, mlp=[8], history=3))
    oracle = Oracle(model, ds.catalog.item_ids, retriever, pool=10)
    reranked = summarize(rank_cases(oracle, cases), ks=(10,))
    recall = summarize(rank_cases(retriever, cases), ks=(10,))
    assert 0 < recall["HR@10"] < 1
    assert reranked["HR@10"] == pytest.approx(recall["HR@10"])
    assert reranked["NDCG@10"] == pytest.approx(recall["HR@10"])  # first whenever in the pool
