"""Embedders: the protocol, WordLlama loading offline, the OpenAI-compatible client against a
local server (batching, retries, errors), and the checks every embedding passes."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recagent.config import IndexConfig
from recagent.errors import ConfigError
from recagent.index.embedders import (
    Embedder,
    EmbedderError,
    OpenAIEmbedder,
    WordLlamaEmbedder,
    checked_embed,
    make_embedder,
)
from tests.conftest import HashEmbedder, WrongDimEmbedder


@pytest.fixture(scope="module")
def wordllama() -> WordLlamaEmbedder:
    return WordLlamaEmbedder()


def test_wordllama_loads_from_the_wheel_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("wordllama tried to download")

    monkeypatch.setattr(requests, "get", no_network)
    embedder = make_embedder(IndexConfig())
    assert isinstance(embedder, Embedder)
    assert (embedder.name, embedder.dim) == ("wordllama:l2_supercat", 256)


def test_wordllama_vectors_are_unit_float32_and_meaningful(wordllama: WordLlamaEmbedder) -> None:
    vecs = wordllama.embed(["horror movies", "scary horror film", "a romantic comedy", ""])
    assert vecs.dtype == np.float32 and vecs.shape == (4, 256)
    np.testing.assert_allclose(np.linalg.norm(vecs[:3], axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vecs).all()  # empty text: a zero row, not NaN
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    assert wordllama.embed([]).shape == (0, 256)


def test_checked_embed_rejects_wrong_dimension_nan_and_row_count() -> None:
    with pytest.raises(EmbedderError, match="65-d vectors, expected 64-d"):
        checked_embed(WrongDimEmbedder(64), ["a"])

    class Broken(HashEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            out = super().embed(texts)
            out[0, 0] = np.nan
            return out

    with pytest.raises(EmbedderError, match="NaN"):
        checked_embed(Broken(), ["a"])

    class Short(HashEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            return super().embed(texts)[:1]

    with pytest.raises(EmbedderError, match="shape"):
        checked_embed(Short(), ["a", "b"])
    out = checked_embed(HashEmbedder(), ["space wars"])
    assert out.shape == (1, 64) and abs(float(np.linalg.norm(out)) - 1) < 1e-5


def _openai(server, **kw) -> OpenAIEmbedder:  # type: ignore[no-untyped-def]
    kw = {"base_url": server.url, "initial_wait": 0.01, "max_wait": 0.02, **kw}
    return OpenAIEmbedder(model="test-embed", dimensions=server.dim, **kw)


def test_openai_batches_and_keeps_order(openai_server) -> None:  # type: ignore[no-untyped-def]
    embedder = _openai(openai_server, batch_size=2, api_key="sk-secret")
    vecs = embedder.embed(["a b", "c", "d e", "f", "g"])
    assert vecs.shape == (5, 16) and embedder.name == "openai:test-embed"
    assert [len(r["input"]) for r in openai_server.requests] == [2, 2, 1]
    assert openai_server.requests[0]["dimensions"] == 16
    again = embedder.embed(["c"])
    np.testing.assert_allclose(again[0], vecs[1], atol=1e-6)
    assert openai_server.headers[0]["authorization"] == "Bearer sk-secret"


def test_openai_retries_429_and_5xx_then_succeeds_without_logging_the_key(
    openai_server, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    openai_server.script = [429, 500, 503]
    with caplog.at_level(logging.DEBUG):
        vecs = _openai(openai_server, api_key="sk-very-secret").embed(["hello"])
    assert vecs.shape == (1, 16)
    assert len(openai_server.requests) == 4
    assert "retry" in caplog.text and "sk-very-secret" not in caplog.text


def test_openai_gives_up_with_a_clear_error(openai_server) -> None:  # type: ignore[no-untyped-def]
    openai_server.script = [500] * 10
    with pytest.raises(EmbedderError, match="HTTP 500"):
        _openai(openai_server, retries=2).embed(["x"])
    assert len(openai_server.requests) == 3
    openai_server.script = [401]
    with pytest.raises(EmbedderError, match="HTTP 401"):
        _openai(openai_server).embed(["x"])
    assert len(openai_server.requests) == 4  # no retry on a client error


def test_openai_unreachable_and_missing_key_are_clear() -> None:
    from tests.conftest import free_port

    dead = OpenAIEmbedder(
        base_url=f"http://127.0.0.1:{free_port()}/v1", retries=1, initial_wait=0.01, timeout=2
    )
    with pytest.raises(EmbedderError, match="failed"):
        dead.embed(["x"])
    with pytest.raises(EmbedderError, match="OPENAI_API_KEY"):
        OpenAIEmbedder()


def test_openai_wrong_dimension_is_caught(openai_server) -> None:  # type: ignore[no-untyped-def]
    openai_server.returned_dim = 8
    embedder = _openai(openai_server)
    with pytest.raises(EmbedderError, match="8-d vectors, expected 16-d"):
        checked_embed(embedder, ["x"])


def test_openai_probes_the_dimension_of_an_unknown_model(openai_server) -> None:  # type: ignore[no-untyped-def]
    embedder = OpenAIEmbedder(model="local-model", base_url=openai_server.url)
    assert embedder.dim == 16 and len(openai_server.requests) == 1


def test_sentence_transformers_needs_a_local_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="st_model_path"):
        make_embedder(IndexConfig(embedder="sentence-transformers"))
    with pytest.raises(ConfigError, match="does not exist"):
        make_embedder(IndexConfig(embedder="sentence-transformers", st_model_path=tmp_path / "x"))
