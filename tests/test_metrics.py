"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recagent.metrics import hit, ndcg, per_user, reciprocal_rank, summarize, target_ranks

INF = -np.inf
# column 0 is padding; items 1..5
SCORES = np.array(
    [
        [INF, 0.1, 0.5, 0.3, 0.9, 0.2],
        [INF, 0.8, 0.1, 0.1, 0.4, 0.0],
    ]
)


def test_rank_counts_better_items() -> None:
    # row 0: target 3 (0.3) is beaten by item 2 (0.5) and item 4 (0.9) -> rank 3
    # row 1: target 1 (0.8) is the best -> rank 1
    assert target_ranks(SCORES, [3, 1]).tolist() == [3.0, 1.0]


def test_history_is_excluded_but_the_target_never_is() -> None:
    assert target_ranks(SCORES, [3, 1], exclude=[[4], []]).tolist() == [2.0, 1.0]
    assert target_ranks(SCORES, [3, 1], exclude=[np.array([2, 3, 4]), [1]]).tolist() == [1, 1]


def test_nan_target_is_a_miss() -> None:
    scores = SCORES.copy()
    scores[0, 3] = np.nan
    ranks = target_ranks(scores, [3, 1])
    assert ranks[0] == math.inf
    assert hit(ranks, 50)[0] == 0.0
    assert ndcg(ranks, 50)[0] == 0.0
    assert reciprocal_rank(ranks)[0] == 0.0


def test_all_nan_scores_never_count_as_hits() -> None:
    scores = np.full((2, 6), np.nan)
    ranks = target_ranks(scores, [1, 2])
    assert summarize(ranks)["HR@50"] == 0.0
    assert summarize(ranks)["MRR"] == 0.0


def test_nan_and_tied_competitors_rank_above_the_target() -> None:
    scores = np.array([[INF, 0.5, np.nan, 0.5, 0.1, 0.1]])
    # target 1 (0.5): item 2 is NaN and item 3 ties -> both count above: rank 3
    assert target_ranks(scores, [1]).tolist() == [3.0]


def test_constant_scores_rank_last() -> None:
    scores = np.zeros((1, 6))
    scores[0, 0] = INF
    assert target_ranks(scores, [2]).tolist() == [5.0]


def test_hand_computed_metric_values() -> None:
    ranks = np.array([1.0, 3.0, 12.0, math.inf])
    assert hit(ranks, 10).tolist() == [1, 1, 0, 0]
    assert ndcg(ranks, 10) == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert ndcg(ranks, 20)[2] == pytest.approx(1 / math.log2(13))
    assert reciprocal_rank(ranks) == pytest.approx([1.0, 1 / 3, 1 / 12, 0.0])
    means = summarize(ranks, ks=(10,))
    assert means == pytest.approx({"HR@10": 0.5, "NDCG@10": 0.375, "MRR": (1 + 1 / 3 + 1 / 12) / 4})
    assert list(per_user(ranks)) == [
        "HR@10",
        "HR@20",
        "HR@50",
        "NDCG@10",
        "NDCG@20",
        "NDCG@50",
        "MRR",
    ]


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="targets"):
        target_ranks(SCORES, [3])
    with pytest.raises(ValueError, match="item_idx"):
        target_ranks(SCORES, [0, 1])
    with pytest.raises(ValueError, match="exclusion"):
        target_ranks(SCORES, [3, 1], exclude=[[1]])
    with pytest.raises(ValueError, match="no users"):
        summarize(np.zeros(0))
