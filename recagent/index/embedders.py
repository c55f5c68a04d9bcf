"""Text embedders: one protocol, three backends.

- ``wordllama`` (default): the 256-d ``l2_supercat`` weights that ship inside the wordllama
  wheel. Loaded from the installed package folder with downloads disabled, so it works
  offline and never fetches anything.
- ``openai``: any OpenAI-compatible ``/embeddings`` endpoint (``OPENAI_BASE_URL`` and
  ``OPENAI_API_KEY`` honoured), batched, retried with exponential backoff and jitter on 429,
  5xx, timeouts and dropped connections.
- ``sentence-transformers``: a model folder on disk (the optional extra); never downloads.

Every embedder returns float32 rows of unit length. `checked_embed` is what the index calls:
it checks the shape, dimension and values of whatever an embedder returned, so a backend
that misbehaves is a clear `EmbedderError`, never a corrupted index.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recagent.config import IndexConfig
from recagent.errors import ConfigError, RecagentError

log = logging.getLogger(__name__)

KNOWN_OPENAI_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
EMBEDDER_NAMES = ("wordllama", "openai", "sentence-transformers")


class EmbedderError(RecagentError):
    """An embedder could not be loaded or returned something unusable."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed size."""

    @property
    def name(self) -> str:
        """Identifies the model: two embedders with the same name and dim are interchangeable."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dim), float32, each row L2-normalised."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0).astype(np.float32)


def checked_embed(embedder: Embedder, texts: Sequence[str], dim: int | None = None) -> np.ndarray:
    """`embedder.embed(texts)`, verified: one finite row per text, of the expected size."""
    expected = embedder.dim if dim is None else dim
    raw = embedder.embed(list(texts))
    vectors = np.asarray(raw, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise EmbedderError(
            f"embedder {embedder.name} returned an array of shape {vectors.shape} for "
            f"{len(texts)} texts"
        )
    if vectors.shape[1] != expected:
        raise EmbedderError(
            f"embedder {embedder.name} returned {vectors.shape[1]}-d vectors, expected "
            f"{expected}-d; check the model (or rebuild the index with this embedder)"
        )
    if not np.isfinite(vectors).all():
        raise EmbedderError(f"embedder {embedder.name} returned NaN or infinite values")
    return l2_normalise(vectors)


class WordLlamaEmbedder:
    """WordLlama ``l2_supercat`` (256-d) from the weights inside the installed wheel."""

    def __init__(self, config: str = "l2_supercat", dim: int = 256) -> None:
        spec = importlib.util.find_spec("wordllama")
        if spec is None or spec.origin is None:
            raise EmbedderError("the wordllama package is not installed")
        from wordllama import WordLlama

        folder = Path(spec.origin).parent
        try:
            self._model = WordLlama.load(
                config=config, dim=dim, cache_dir=folder, disable_download=True
            )
        except (FileNotFoundError, ValueError, AttributeError) as exc:
            raise EmbedderError(
                f"cannot load WordLlama {config}-{dim} from {folder}: {exc}"
            ) from exc
        self._name = f"wordllama:{config}"
        self._dim = dim

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        # norm=False: wordllama divides by zero for texts with no known tokens.
        return l2_normalise(self._model.embed(list(texts), norm=False, batch_size=256))


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint, with batching and retries."""

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        initial_wait: float = 0.5,
        max_wait: float = 20.0,
        batch_size: int = 512,
    ) -> None:
        import openai

        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.retries = retries
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        try:
            # The client reads OPENAI_BASE_URL / OPENAI_API_KEY when these are None. A local
            # server often needs no key; the client insists on one, so pass a placeholder.
            self._client = openai.OpenAI(
                base_url=base_url,
                api_key=api_key or ("unused" if base_url else None),
                timeout=timeout,
                max_retries=0,  # retries are ours, with jitter, and logged
            )
        except openai.OpenAIError as exc:
            raise EmbedderError(
                "the openai embedder needs OPENAI_API_KEY (or an OpenAI-compatible server "
                "via --openai-base-url / OPENAI_BASE_URL)"
            ) from exc
        self._dim = dimensions or KNOWN_OPENAI_DIMS.get(model)

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:  # an unknown model: ask it once
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        parts = [
            self._request(list(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalise(np.concatenate(parts))

    def _request(self, batch: list[str]) -> np.ndarray:
        import openai
        import tenacity

        transient = (
            openai.RateLimitError,
            openai.InternalServerError,
            openai.APITimeoutError,
            openai.APIConnectionError,
        )
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(transient),
            wait=tenacity.wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait),
            stop=tenacity.stop_after_attempt(self.retries + 1),
            before_sleep=lambda state: log.warning(
                "embeddings request failed (%s); retry %d of %d",
                type(state.outcome.exception()).__name__ if state.outcome else "?",
                state.attempt_number,
                self.retries,
            ),
            reraise=True,
        )
        extra: dict[str, Any] = {"dimensions": self.dimensions} if self.dimensions else {}
        try:
            response = retrying(
                self._client.embeddings.create, model=self.model, input=batch, **extra
            )
        except openai.APIStatusError as exc:
            raise EmbedderError(
                f"embeddings endpoint answered HTTP {exc.status_code} for model {self.model!r}: "
                f"{_short(exc.message)}"
            ) from exc
        except openai.APIError as exc:  # connection errors and timeouts after the last retry
            raise EmbedderError(
                f"embeddings endpoint {self._client.base_url} failed: {_short(str(exc))}"
            ) from exc
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(batch):
            raise EmbedderError(
                f"embeddings endpoint returned {len(rows)} vectors for {len(batch)} texts"
            )
        return np.asarray([r.embedding for r in rows], dtype=np.float32)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder; never downloads."""

    def __init__(self, model_path: Path, batch_size: int = 128) -> None:
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"sentence-transformers model folder {path} does not exist (set "
                "index.st_model_path to a local model; nothing is downloaded)"
            )
        if importlib.util.find_spec("sentence_transformers") is None:
            raise EmbedderError(
                "the sentence-transformers embedder needs the optional extra: "
                "pip install 'recagent[sentence-transformers]'"
            )
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbedderError(
                f"cannot load the sentence-transformers model {path}: {exc}"
            ) from exc
        dim = self._model.get_sentence_embedding_dimension()
        if not dim:
            raise EmbedderError(f"the model in {path} does not declare its embedding size")
        self._dim = int(dim)
        self._name = f"sentence-transformers:{path.name}"
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        out = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)


def make_embedder(config: IndexConfig) -> Embedder:
    """The embedder `config.embedder` names, configured from `config`."""
    if config.embedder == "wordllama":
        return WordLlamaEmbedder()
    if config.embedder == "openai":
        return OpenAIEmbedder(
            model=config.openai_model,
            base_url=config.openai_base_url,
            dimensions=config.openai_dimensions,
            timeout=config.openai_timeout,
            retries=config.openai_retries,
            initial_wait=config.retry_initial_wait,
            max_wait=config.retry_max_wait,
            batch_size=config.batch_size,
        )
    if config.st_model_path is None:
        raise ConfigError(
            "the sentence-transformers embedder needs a local model folder: set "
            "index.st_model_path (RECAGENT_INDEX__ST_MODEL_PATH) or --model-path"
        )
    return SentenceTransformerEmbedder(config.st_model_path, batch_size=min(config.batch_size, 256))


__all__ = [
    "EMBEDDER_NAMES",
    "Embedder",
    "EmbedderError",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "WordLlamaEmbedder",
    "checked_embed",
    "l2_normalise",
    "make_embedder",
]
