"""Shared fixtures: an isolated workspace, the CLI runner, tiny datasets written on the fly,
and the shared MovieLens copies (skipped, with a reason, when absent)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recagent.cli import app
from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.workspace import Workspace

ML100K_GENRE_COUNT = 19


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own workspace and no LLM configuration from the developer's shell."""
    monkeypatch.setenv("RECAGENT_HOME", str(tmp_path / "home"))
    for var in ("RECAGENT_CONFIG", "RECAGENT_DATASET", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "home")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run `recagent ARGS...` in-process; returns exit code, stdout and stderr."""

    def run(*args: str, input: str | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


def shared_data_dir() -> Path | None:
    """The shared MovieLens copies, from RECAGENT_TEST_DATA or ../shared/data beside the repo."""
    env = os.environ.get("RECAGENT_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    return next((p for p in candidates if (p / "ml-100k" / "u.data").is_file()), None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "REAL-DATA TEST SKIPPED: set RECAGENT_TEST_DATA to the folder holding ml-100k/ "
            "and ml-latest-small/"
        )
    return path


@pytest.fixture(scope="session")
def ml100k(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """ML-100k prepared once per session in its own workspace (read-only for tests)."""
    ws = Workspace(tmp_path_factory.mktemp("ml100k-home"))
    return prepare(PrepareConfig(dataset="ml-100k", source=shared_data / "ml-100k"), ws)


Rating = tuple[str | int, str | int, float, int]


def write_ml100k(
    folder: Path,
    ratings: Sequence[Rating],
    items: Sequence[tuple[int | str, str, Sequence[int]]] | None = None,
) -> Path:
    """Write a tiny dataset in the official ML-100k format (u.data, u.item) into `folder`.

    `items` are (id, title, genre positions); by default one item per id used in `ratings`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{u}\t{i}\t{r:g}\t{t}" for u, i, r, t in ratings]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    if items is None:
        ids = sorted({int(i) for _, i, _, _ in ratings})
        items = [(i, f"Movie {i} (199{i % 10})", [1 + i % 18]) for i in ids]
    rows = []
    for item_id, title, genres in items:
        flags = ["1" if g in genres else "0" for g in range(ML100K_GENRE_COUNT)]
        rows.append("|".join([str(item_id), title, "01-Jan-1995", "", "http://x", *flags]))
    (folder / "u.item").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    return folder


@pytest.fixture
def tiny_ml100k(tmp_path: Path) -> Path:
    """Four users, six items, timestamps with ties."""
    ratings: list[Rating] = [
        (1, 1, 5, 100),
        (1, 2, 4, 101),
        (1, 3, 3, 102),
        (1, 4, 5, 103),
        (1, 5, 2, 104),
        (2, 3, 5, 200),
        (2, 1, 4, 200),
        (2, 2, 3, 201),
        (2, 6, 1, 202),
        (3, 6, 4, 300),
        (3, 5, 4, 301),
        (3, 4, 4, 302),
        (4, 2, 5, 400),
        (4, 1, 5, 401),
    ]
    return write_ml100k(tmp_path / "tiny", ratings)


# --- a tiny movie catalog for agent and evaluation tests ------------------------------------
# 40 items over 8 genres and four decades; 30 users whose histories lean to two genres each.
# Deterministic (seeded), written in the ML-100k format.
MINI_GENRES = {
    "Action": 1,
    "Animation": 3,
    "Comedy": 5,
    "Crime": 6,
    "Drama": 8,
    "Horror": 11,
    "Romance": 14,
    "Sci-Fi": 15,
}


def mini_movie_items() -> list[tuple[int, str, list[int]]]:
    names = list(MINI_GENRES)
    items = []
    for i in range(1, 41):
        first, second = names[i % 8], names[(i * 3) % 8]
        year = 1950 + (i * 7) % 48
        genres = sorted({MINI_GENRES[first], MINI_GENRES[second]})
        items.append((i, f"{first} Story {i} ({year})", genres))
    items[0] = (1, "Toy Story (1995)", [MINI_GENRES["Animation"], MINI_GENRES["Comedy"]])
    items[1] = (2, "Alien (1979)", [MINI_GENRES["Horror"], MINI_GENRES["Sci-Fi"]])
    items[2] = (3, "Blade Runner (1982)", [MINI_GENRES["Sci-Fi"]])
    items[3] = (4, "Heat (1995)", [MINI_GENRES["Action"], MINI_GENRES["Crime"]])
    return items


@pytest.fixture
def mini_movies(tmp_path: Path) -> Dataset:
    import numpy as np

    rng = np.random.default_rng(7)
    items = mini_movie_items()
    by_genre: dict[int, list[int]] = {}
    for item_id, _, genres in items:
        for g in genres:
            by_genre.setdefault(g, []).append(item_id)
    ratings: list[Rating] = []
    codes = list(MINI_GENRES.values())
    for user in range(1, 31):
        liked = rng.choice(codes, 2, replace=False)
        pool = sorted({i for g in liked for i in by_genre[int(g)]})
        chosen = rng.choice(pool, min(len(pool), 8), replace=False)
        for t, item_id in enumerate(chosen):
            ratings.append((user, int(item_id), float(rng.integers(2, 6)), 1000 * user + t))
    src = write_ml100k(tmp_path / "mini", ratings, items=items)
    return prepare(
        PrepareConfig(dataset="ml-100k", source=src, name="mini"), Workspace(tmp_path / "home")
    )


# --- SASRec: a tiny patterned dataset and a tiny trained model ------------------------------

SASREC_ITEMS = 20


def sasrec_ratings(users: int = 30, length: int = 12, shift: int = 0) -> list[Rating]:
    """Users who watch items in a cycle (1, 2, ..., 20, 1, ...), each from their own start:
    a next-item pattern a tiny SASRec learns in a few epochs. `shift` changes the data (a
    new version of the same dataset)."""
    ratings: list[Rating] = []
    for u in range(1, users + 1):
        start = (u * 7 + shift) % SASREC_ITEMS
        for t in range(length - u % 3):
            ratings.append((u, 1 + (start + t) % SASREC_ITEMS, 4, 1000 * u + t))
    return ratings


@pytest.fixture
def sasrec_source(tmp_path: Path) -> Path:
    """An ML-100k-format folder holding the patterned data."""
    return write_ml100k(tmp_path / "sasrec-src", sasrec_ratings())


@pytest.fixture(scope="session")
def tiny_sasrec_config():  # -> SASRecConfig, imported lazily: torch loads only when used
    from recagent.models.sasrec import SASRecConfig

    return SASRecConfig(dim=16, layers=1, heads=2, dropout=0.0, max_len=8)


@pytest.fixture(scope="session")
def tiny_train_options():  # -> SASRecTrainConfig
    from recagent.models.train import SASRecTrainConfig

    return SASRecTrainConfig(epochs=6, batch_size=16, lr=0.01, patience=3, seed=0)


@dataclass
class TrainedSASRec:
    workspace: Workspace
    dataset: Dataset
    scorer: object  # SASRecScorer
    result: object  # TrainResult


@pytest.fixture(scope="session")
def tiny_sasrec(
    tmp_path_factory: pytest.TempPathFactory, tiny_sasrec_config, tiny_train_options
) -> TrainedSASRec:
    """The patterned dataset prepared and a tiny SASRec trained on it (once per session;
    read-only for tests)."""
    from recagent.models.checkpoint import load_sasrec_scorer
    from recagent.models.train import train_sasrec

    root = tmp_path_factory.mktemp("tiny-sasrec")
    ws = Workspace(root / "home")
    source = write_ml100k(root / "src", sasrec_ratings())
    ds = prepare(PrepareConfig(dataset="ml-100k", source=source), ws)
    result = train_sasrec(ds, tiny_sasrec_config, tiny_train_options, ws)
    return TrainedSASRec(ws, ds, load_sasrec_scorer(ws, ds), result)
