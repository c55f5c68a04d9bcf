"""`torchrun --nproc-per-node 2 -m recagent train ...`: two CPU processes (gloo) train like one
process with the same global batch, and only the first writes a checkpoint that a plain
`recagent eval` loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import sasrec_ratings, write_ml100k

TINY = [
    "--no-align-text",
    "--dim", "16", "--layers", "1", "--heads", "2", "--max-len", "8", "--dropout", "0",
    "--loss", "full-ce", "--batch-size", "16", "--lr", "0.01", "--epochs", "3",
    "--lr-patience", "0", "--json",
]  # fmt: skip


def _recagent(home: Path, *args: str, processes: int = 1) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "recagent"]
    if processes > 1:
        launcher = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={processes}", "-m", "recagent",
        ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECAGENT_HOME": str(home)}
    return subprocess.run(
        [*launcher, "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_two_processes_train_like_one_and_the_checkpoint_loads(tmp_path: Path) -> None:
    source = write_ml100k(tmp_path / "src", sasrec_ratings())
    homes = {n: tmp_path / f"home{n}" for n in (1, 2)}
    for home in homes.values():
        prepared = _recagent(
            home, "data", "prepare", "--dataset", "ml-100k", "--source", str(source)
        )
        assert prepared.returncode == 0, prepared.stderr

    one = _recagent(homes[1], "train", "sasrec", *TINY)
    two = _recagent(homes[2], "train", "sasrec", *TINY, processes=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stdout + two.stderr
    single = json.loads(one.stdout)
    parallel = json.loads(two.stdout)  # printed once: only the first process prints
    assert single["processes"] == 1 and parallel["processes"] == 2
    for a, b in zip(single["history"], parallel["history"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=0.05)
    assert parallel["valid"]["NDCG@10"] == pytest.approx(single["valid"]["NDCG@10"], abs=0.1)

    checkpoints = list((homes[2] / "models" / "ml-100k").glob("*.pt"))
    assert [p.name for p in checkpoints] == ["sasrec.pt"]
    evaluated = _recagent(homes[2], "eval", "sasrec", "--split", "valid", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["models"]["sasrec"]["NDCG@10"] == pytest.approx(parallel["valid"]["NDCG@10"])
