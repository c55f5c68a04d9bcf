"""The ratings protocol: the classical predictors on planted data, the metrics by hand, the LLM
predictors against a scripted server (parse failures counted, few-shot shows the user's own
ratings), and the whole run through the CLI."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from recagent.evals.ratings import parse_stars
from recagent.metrics import roc_auc
from recagent.models.ratings import ClassicalPredictor, Training
from tests.conftest import Stack
from tests.fakes import FakeOpenAIServer


def planted(seed: int = 0) -> tuple[Training, Training, np.ndarray]:
    """Ratings = 3.5 + user bias + item bias + a rank-2 taste term + noise; 80% to train."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 120, 80
    bu, bi = rng.normal(0, 0.5, n_users + 1), rng.normal(0, 0.5, n_items + 1)
    p, q = rng.normal(0, 0.7, (n_users + 1, 2)), rng.normal(0, 0.7, (n_items + 1, 2))
    users = rng.integers(1, n_users + 1, 6000)
    items = rng.integers(1, n_items + 1, 6000)
    truth = 3.5 + bu[users] + bi[items] + np.einsum("nd,nd->n", p[users], q[items])
    ratings = np.clip(truth + rng.normal(0, 0.2, len(truth)), 0.5, 5.0)
    cut = 4800
    train = Training(users[:cut], items[:cut], ratings[:cut], n_users, n_items)
    test = Training(users[cut:], items[cut:], ratings[cut:], n_users, n_items)
    return train, test, ratings[cut:]


def test_classical_predictors_learn_the_planted_structure_in_order() -> None:
    train, test, truth = planted()
    rmse = {}
    for name in ("global-mean", "item-mean", "biases", "mf"):
        predictor = ClassicalPredictor(name, train)
        pred = np.array(
            [predictor.stars(int(u), int(i)) for u, i in zip(test.users, test.items, strict=True)]
        )
        rmse[name] = float(np.sqrt(np.mean((pred - truth) ** 2)))
    assert rmse["mf"] < rmse["biases"] < rmse["item-mean"] < rmse["global-mean"]
    assert rmse["mf"] < 0.6 * rmse["global-mean"]


def test_roc_auc_by_hand_and_parse_stars() -> None:
    positive = np.array([True, False, True, False])
    assert roc_auc(positive, np.array([0.9, 0.1, 0.8, 0.3])) == 1.0
    assert roc_auc(positive, np.array([0.1, 0.9, 0.2, 0.8])) == 0.0
    # pairs (pos, neg): (0.5,0.5) tie = 0.5, (0.5,0.2) = 1, (0.4,0.5) = 0, (0.4,0.2) = 1
    assert roc_auc(positive, np.array([0.5, 0.5, 0.4, 0.2])) == pytest.approx(2.5 / 4)
    assert roc_auc(np.array([True, True]), np.array([1.0, 2.0])) is None
    assert parse_stars("4") == 4.0 and parse_stars("I'd say 3.5 stars.") == 3.5
    assert parse_stars("Rating: 5/5") == 5.0 and parse_stars("10 out of 10") is None
    assert parse_stars("five stars") is None and parse_stars("0") is None


def _stars_reply(body: dict[str, Any]) -> dict[str, Any]:
    prompt = body["messages"][-1]["content"]
    n = len(prompt)
    return {"content": ["4", "Probably 3.5 stars", "five"][n % 3]}


def test_ratings_protocol_end_to_end(
    cli, mini_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = ["--home", str(mini_stack.workspace.root)]
    with FakeOpenAIServer([_stars_reply] * 100) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        out = cli(
            *home, "eval", "run", "--protocol", "ratings", "--users", "12", "--pipelines",
            "global-mean,item-mean,biases,mf,llm-zero,llm-few", "--no-cache",
        )  # fmt: skip
        assert out.exit_code == 0, out.stderr
        prompts = [r["messages"][-1]["content"] for r in server.chat_requests]
    assert len(prompts) == 24  # one request per user and LLM predictor
    zero, few = prompts[:12], prompts[12:]  # one predictor after the other
    assert not any("Some of their ratings" in p for p in zero)
    assert all("Some of their ratings" in p and " stars" in p for p in few)
    run_id = json.loads(cli(*home, "eval", "list", "--json").stdout)[-1]["run_id"]
    folder = mini_stack.workspace.runs_dir / run_id
    summary = json.loads((folder / "summary.json").read_text())
    pipes = summary["pipelines"]
    assert set(pipes) == {"global-mean", "item-mean", "biases", "mf", "llm-zero", "llm-few"}
    unparsed = {name: p["ratings"]["unparsed"] for name, p in pipes.items()}
    assert unparsed["global-mean"] == 0 and unparsed["llm-zero"] + unparsed["llm-few"] > 0
    for p in pipes.values():
        assert p["users"] == 12 and p["ratings"]["cases"] == 12  # unparsed are kept, counted
        assert p["ratings"]["RMSE"]["mean"] ** 2 == pytest.approx(p["accuracy"]["MSE"]["mean"])
    records = [json.loads(x) for x in (folder / "per_user.jsonl").read_text().splitlines()]
    llm = [r for r in records if r["pipeline"] == "llm-zero"]
    assert {r["prediction"] for r in llm} <= {4.0, 3.5, summary_mean(records)}
    compared = cli(*home, "eval", "compare", run_id, run_id, "--pair", "biases,llm-zero", "--json")
    assert compared.exit_code == 0, compared.stderr
    assert {d["metric"] for d in json.loads(compared.stdout)["deltas"]} >= {"MAE", "MSE"}


def summary_mean(records: list[dict[str, Any]]) -> float:
    """The global mean the run predicted (what an unreadable answer falls back to)."""
    return next(r["prediction"] for r in records if r["pipeline"] == "global-mean")
