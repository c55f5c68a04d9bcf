"""Shared fixtures: an isolated workspace, the CLI runner, tiny datasets written on the fly,
and the shared MovieLens copies (skipped, with a reason, when absent)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recagent.cli import app
from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.workspace import Workspace

ML100K_GENRE_COUNT = 19


def pytest_configure(config: pytest.Config) -> None:
    """One thread for torch's math for the whole session (and the processes tests start):
    with its default of one thread per core, the torch-heavy tests slow down many times over
    as soon as another process (a second test worker, a local LLM server) holds a core.
    RECAGENT_TEST_THREADS=N gives them N."""
    threads = os.environ.get("RECAGENT_TEST_THREADS", "1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    if "torch" in sys.modules:  # already loaded: the variables came too late for it
        sys.modules["torch"].set_num_threads(int(threads))


# The developer's LLM settings, read before every test hides them (live tests restore them).
LIVE_LLM_ENV = {k: os.environ.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}


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


def mini_movie_ratings() -> list[Rating]:
    rng = np.random.default_rng(7)
    by_genre: dict[int, list[int]] = {}
    for item_id, _, genres in mini_movie_items():
        for g in genres:
            by_genre.setdefault(g, []).append(item_id)
    ratings: list[Rating] = []
    for user in range(1, 31):
        liked = rng.choice(list(MINI_GENRES.values()), 2, replace=False)
        pool = sorted({i for g in liked for i in by_genre[int(g)]})
        for t, item_id in enumerate(rng.choice(pool, min(len(pool), 8), replace=False)):
            ratings.append((user, int(item_id), float(rng.integers(2, 6)), 1000 * user + t))
    return ratings


@pytest.fixture
def mini_movies(tmp_path: Path) -> Dataset:
    src = write_ml100k(tmp_path / "mini", mini_movie_ratings(), items=mini_movie_items())
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

    return SASRecConfig(dim=16, layers=1, heads=2, dropout=0.0, max_len=8, loss="full-ce")


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


# ---------------------------------------------------------------------------------------------
# Vector recall fakes: a deterministic embedder, a small catalog with meaningful titles, an
# index in the test's workspace, a local OpenAI-compatible embeddings server, and a real
# `chroma run` server on 127.0.0.1.
# ---------------------------------------------------------------------------------------------


def default_sigint() -> None:
    """`preexec_fn` for a child a test will Ctrl-C: SIGINT back to its default, since a suite
    started in the background (nohup, `cmd &`) hands its children SIGINT ignored, and an
    ignored SIGINT never becomes a KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def hash_vector(text: str, dim: int) -> np.ndarray:
    """Bag of words hashed into `dim` buckets: texts sharing words are similar."""
    vec = np.zeros(dim, dtype=np.float32)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vec[int.from_bytes(digest[:4], "little") % dim] += 1.0
    norm = np.linalg.norm(vec)
    return vec / norm if norm else vec


class HashEmbedder:
    """Deterministic test embedder (no model): hashed bag of words, L2-normalised."""

    def __init__(self, dim: int = 64, name: str = "test:hash-bow") -> None:
        self._dim = dim
        self._name = name
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.calls += 1
        return (
            np.stack([hash_vector(t, self._dim) for t in texts])
            if texts
            else np.zeros((0, self._dim))
        )


class WrongDimEmbedder(HashEmbedder):
    """Declares `dim` but returns vectors one longer, after `good_batches` good batches."""

    def __init__(self, dim: int = 64, good_batches: int = 0) -> None:
        super().__init__(dim)
        self.good_batches = good_batches

    def embed(self, texts):  # type: ignore[no-untyped-def]
        out = super().embed(texts)
        if self.calls > self.good_batches:
            out = np.concatenate([out, np.ones((len(texts), 1), dtype=np.float32)], axis=1)
        return out


# (item id, title, ML-100k genre positions: 1 Action, 2 Adventure, 3 Animation, 4 Children's,
#  5 Comedy, 8 Drama, 11 Horror, 14 Romance, 15 Sci-Fi, 16 Thriller, 18 Western)
RECALL_ITEMS = [
    (1, "Space Wars (1977)", [1, 15]),
    (2, "Galaxy Quest Comedy (1999)", [5, 15]),
    (3, "Haunted House of Horror (1980)", [11]),
    (4, "Zombie Night Horror (1990)", [11, 16]),
    (5, "Love in Paris (1995)", [14, 5]),
    (6, "Paris Romance Story (1960)", [14, 8]),
    (7, "Cartoon Friends Animation (1995)", [3, 4]),
    (8, "Cowboy Western Trail (1955)", [18]),
    (9, "Space Station Thriller (2001)", [15, 16]),
    (10, "Quiet Family Drama (1985)", [8]),
    (11, "Robot Space Adventure (1984)", [2, 15]),
    (12, "Western Gunfight at Noon (1952)", [18, 1]),
]
RECALL_RATINGS = [
    (1, 1, 5, 10),
    (1, 11, 4, 11),
    (1, 9, 5, 12),
    (1, 2, 4, 13),
    (1, 3, 2, 14),
    (2, 5, 5, 20),
    (2, 6, 4, 21),
    (2, 10, 4, 22),
    (2, 7, 3, 23),
    (3, 3, 5, 30),
    (3, 4, 5, 31),
    (3, 9, 3, 32),
    (3, 8, 2, 33),
]


@pytest.fixture
def recall_dataset(tmp_path: Path, workspace: Workspace) -> Dataset:
    """A 12-movie catalog whose titles say what the movies are, in the test's workspace."""
    folder = write_ml100k(tmp_path / "recall-src", RECALL_RATINGS, RECALL_ITEMS)
    return prepare(PrepareConfig(dataset="ml-100k", source=folder), workspace)


@pytest.fixture(params=["exact", "hnsw"])
def recall_config(request: pytest.FixtureRequest) -> IndexConfig:
    """Several batches even for 12 items; each recall test runs on both search paths: exact
    over the in-memory vectors (what small catalogs use) and Chroma's HNSW graph."""
    exact_max_items = 20_000 if request.param == "exact" else 0
    return IndexConfig(batch_size=5, exact_max_items=exact_max_items)


@pytest.fixture
def recall_index(recall_dataset: Dataset, workspace: Workspace, recall_config: IndexConfig):
    """The recall_dataset indexed with HashEmbedder in the test's workspace (embedded Chroma)."""
    from recagent.index.store import open_index

    index = open_index(
        workspace, recall_dataset, recall_config, embedder=HashEmbedder(), build_if_missing=True
    )
    yield index
    index.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `chroma run` on 127.0.0.1 with its data in a temp folder; yields its URL."""
    exe = Path(sys.executable).parent / "chroma"
    binary = str(exe) if exe.is_file() else shutil.which("chroma")
    if binary is None:
        pytest.fail("the `chroma` command (installed with chromadb) is not on PATH")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    proc = subprocess.Popen(
        [binary, "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited: {(path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("chroma run did not start listening within 30 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@dataclass
class FakeOpenAI:
    """State of the local OpenAI-compatible embeddings server."""

    url: str
    dim: int = 16
    script: list[int] = field(default_factory=list)  # status codes to answer first
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    returned_dim: int | None = None  # answer with vectors of this size instead of `dim`


@pytest.fixture
def openai_server():
    """A local `/v1/embeddings` server: scripted error codes first, then hashed vectors."""
    state = FakeOpenAI(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            if state.script:
                code = state.script.pop(0)
                payload = json.dumps({"error": {"message": f"scripted {code}", "type": "x"}})
                self.send_response(code)
            else:
                dim = state.returned_dim or body.get("dimensions") or state.dim
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                data = [
                    {"object": "embedding", "index": i, "embedding": hash_vector(t, dim).tolist()}
                    for i, t in enumerate(inputs)
                ]
                data.reverse()  # servers may answer out of order; the client sorts by index
                payload = json.dumps(
                    {"object": "list", "data": data, "model": body["model"], "usage": {}}
                )
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# --- the agent's full stack on the mini catalog: data, a tiny SASRec, a WordLlama index ----


@dataclass
class Stack:
    workspace: Workspace
    dataset: Dataset
    scorer: object
    index: object


def build_stack(root: Path, dataset: Dataset | None = None) -> Stack:
    """Prepare the mini catalog (or use `dataset`), train a tiny SASRec and build the default
    (WordLlama) index in a workspace at `root`, as `recagent chat` would find them."""
    from recagent.config import load_settings
    from recagent.index.store import open_index
    from recagent.models.checkpoint import load_sasrec_scorer
    from recagent.models.sasrec import SASRecConfig
    from recagent.models.train import SASRecTrainConfig, train_sasrec

    ws = Workspace(root)
    if dataset is None:
        src = write_ml100k(
            root.parent / f"{root.name}-src", mini_movie_ratings(), items=mini_movie_items()
        )
        dataset = prepare(PrepareConfig(dataset="ml-100k", source=src), ws)
    config = SASRecConfig(dim=16, layers=1, heads=2, dropout=0.0, max_len=50)
    train_sasrec(dataset, config, SASRecTrainConfig(epochs=2, batch_size=64, seed=0), ws)
    index = open_index(ws, dataset, load_settings().index, build_if_missing=True)
    return Stack(ws, dataset, load_sasrec_scorer(ws, dataset), index)


@pytest.fixture(scope="session")
def mini_stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The mini catalog with a tiny SASRec and a real WordLlama index (read-only)."""
    return build_stack(tmp_path_factory.mktemp("mini-stack") / "home")


@pytest.fixture(scope="session")
def ml100k_stack(ml100k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """ML-100k with a tiny 2-epoch SASRec and a real WordLlama index (read-only)."""
    root = tmp_path_factory.mktemp("ml100k-stack") / "home"
    ds = prepare(
        PrepareConfig(dataset="ml-100k", source=Path(ml100k.manifest.config["source"])),
        Workspace(root),
    )
    return build_stack(root, ds)


# --- Every model, tiny, trained once on the patterned data ----------------------------------

TINY_MODELS = {  # model -> (config values, training options), in the registry's order
    "sasrec": (
        {"dim": 16, "layers": 1, "heads": 2, "dropout": 0.0, "max_len": 8, "loss": "full-ce"},
        {"epochs": 6, "batch_size": 16, "lr": 0.01, "patience": 3},
    ),
    "hstu": (
        {
            "dim": 16,
            "layers": 1,
            "qk_dim": 8,
            "v_dim": 8,
            "dropout": 0.0,
            "max_len": 8,
            "negatives": 8,
        },
        {"epochs": 8, "batch_size": 16, "lr": 0.01, "patience": 3},
    ),
    "bert4rec": (
        {
            "dim": 16,
            "layers": 1,
            "heads": 2,
            "ff_dim": 32,
            "dropout": 0.0,
            "max_len": 8,
            "mask_prob": 0.3,
            "last_item_mask": 0.3,
        },
        {"epochs": 10, "batch_size": 16, "lr": 0.01, "patience": 4},
    ),
    "bst": (
        {
            "dim": 12,
            "gap_dim": 4,
            "heads": 2,
            "ff_dim": 16,
            "mlp": [16],
            "history": 5,
            "pool": 10,
            "negatives": 2,
            "hard_pool": 5,
            "dropout": 0.0,
        },
        {"epochs": 20, "batch_size": 32, "lr": 0.01, "patience": 20, "lr_patience": None},
    ),
    "lrurec": (
        {"dim": 16, "layers": 1, "dropout": 0.0, "lru_dropout": 0.0, "max_len": 8},
        {"epochs": 8, "batch_size": 16, "lr": 0.01, "patience": 3, "weight_decay": 0.0},
    ),
}


@dataclass
class TrainedModels:
    workspace: Workspace
    dataset: Dataset
    results: dict  # model -> TrainResult


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    """The patterned dataset and every model trained tiny on it, in one workspace (once per
    session; read-only for tests)."""
    from recagent.models.registry import spec
    from recagent.models.train import train_model

    root = tmp_path_factory.mktemp("tiny-models")
    ws = Workspace(root / "home")
    source = write_ml100k(root / "src", sasrec_ratings())
    ds = prepare(PrepareConfig(dataset="ml-100k", source=source), ws)
    results = {}
    for name, (config, options) in TINY_MODELS.items():  # sasrec first: BST reranks it
        model_spec = spec(name)
        results[name] = train_model(
            name, ds, model_spec.config(**config), model_spec.train_type(**options), ws
        )
    return TrainedModels(ws, ds, results)
