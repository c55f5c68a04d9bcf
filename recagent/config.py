"""Typed settings: environment (`RECAGENT_*`), an optional `recagent.toml`, then CLI flags.

Precedence, highest first: values passed by the CLI, environment variables
(`RECAGENT_HOME`, `RECAGENT_DATASET`, nested ones as `RECAGENT_LLM__TIMEOUT`), the TOML file,
defaults. The TOML file is the first of: `$RECAGENT_CONFIG`, `./recagent.toml`,
`$RECAGENT_HOME/recagent.toml`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_data_dir
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from recagent.errors import ConfigError

CONFIG_FILE_NAME = "recagent.toml"


def default_home() -> Path:
    """The platform's user data directory for recagent (e.g. ~/.local/share/recagent)."""
    return Path(user_data_dir("recagent", appauthor=False))


class Section(BaseModel):
    """Base for nested settings sections: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class LLMConfig(Section):
    """`[llm]` in recagent.toml, or RECAGENT_LLM__<KEY>."""

    spec: str = Field(
        "auto",
        description="offline | openai:<model> | auto (openai when OPENAI_API_KEY or "
        "OPENAI_BASE_URL is set, else offline)",
    )
    model: str | None = Field(None, description="Model for 'auto' [default: the server's].")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_max_s: float = Field(8.0, gt=0)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(1024, ge=16)
    concurrency: int = Field(
        4,
        ge=1,
        le=64,
        description="LLM requests in flight at most in an evaluation (its --workers threads "
        "or Ray workers together).",
    )


class AgentConfig(Section):
    """`[agent]`: how a turn runs."""

    k: int = Field(10, ge=1, le=50, description="Items per answer by default.")
    domain: str = Field("movies", description="What the catalog holds, for the prompts.")
    mode: Literal["plan", "loop"] = Field(
        "plan",
        description="How a model drives the tools: plan (it reads the request and writes a "
        "plan in one call, the tools run it, it picks and explains in a second; for small "
        "models) or loop (it calls the tools one at a time; for capable models).",
    )
    loop_max_steps: int = Field(
        8, ge=2, le=50, description="Loop mode: model calls per turn at most (the step budget)."
    )
    loop_max_tool_calls: int = Field(
        12, ge=1, le=100, description="Loop mode: tool calls per turn at most."
    )
    explain: Literal["evidence", "model"] = Field(
        "evidence",
        description="Who words each item's explanation in plan mode: the tools' evidence "
        "(grounded by construction; the model picks and writes one message) or the model "
        "(a sentence per item, held to its evidence by the guard; slower on a CPU).",
    )
    palr: bool = Field(
        False,
        description="LLM mode, PALR-lite: before it picks, the model writes the person's "
        "preference keywords from their history (one more call, cached per history) and "
        "picks with them in view.",
    )
    order: Literal["tools", "llm"] = Field(
        "tools",
        description="Order of an LLM turn's answer: the tools' blended scores, or the order "
        "the model chose (after the guard's repairs).",
    )
    popularity_half_life_days: float | None = Field(
        60.0,
        gt=0,
        description="'Popular lately': an interaction counts half as much this many days "
        "before the data's last one (None: all-time counts).",
    )
    first_run_train_s: float | None = Field(
        150.0,
        gt=0,
        description="When chat finds no SASRec model it trains one for at most this many "
        "seconds, keeping the best epoch so far (None: train to convergence).",
    )


EmbedderName = Literal["wordllama", "openai", "sentence-transformers"]


class IndexConfig(Section):
    """Vector recall: how item text is embedded and where the Chroma index lives."""

    embedder: EmbedderName = Field(
        "wordllama", description="wordllama (offline, default), openai, sentence-transformers."
    )
    template: str = Field(
        "title_genres_text",
        description="Item text template: a preset name (title, title_genres, "
        "title_genres_text, full), an inline Jinja template, or @path/to/file.",
    )
    batch_size: int = Field(512, ge=1, le=5000, description="Items embedded and upserted at once.")
    chroma_url: str | None = Field(
        None, description="Use a Chroma server (http://host:port) instead of the workspace."
    )
    collection: str | None = Field(
        None, description="Collection name [default: recagent-<dataset>]."
    )
    openai_model: str = "text-embedding-3-small"
    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint [default: $OPENAI_BASE_URL]."
    )
    openai_dimensions: int | None = Field(
        None, ge=1, description="Ask the endpoint for vectors of this size (text-embedding-3-*)."
    )
    openai_timeout: float = Field(30.0, gt=0, description="Seconds per request.")
    openai_retries: int = Field(5, ge=0, description="Retries on 429, 5xx and timeouts.")
    retry_initial_wait: float = Field(0.5, ge=0, description="First backoff, seconds.")
    retry_max_wait: float = Field(20.0, ge=0, description="Longest backoff, seconds.")
    st_model_path: Path | None = Field(
        None, description="Local sentence-transformers model folder (never downloaded)."
    )
    # HNSW graph of a new index. Chroma's defaults (M=16, ef 100) found 61% of the exact
    # top-10 at 100k items; these find 97% (benchmarks/RESULTS.md), at ~2x build time.
    hnsw_max_neighbors: int = Field(32, ge=2, description="HNSW M (links per node).")
    hnsw_ef_construction: int = Field(200, ge=1, description="HNSW build-time beam.")
    hnsw_ef_search: int = Field(800, ge=1, description="HNSW query-time beam.")
    history_strategy: Literal["centroid", "maxsim"] = Field(
        "maxsim",
        description="How a history becomes a query: maxsim (one query per recent item, the "
        "measured winner) or centroid (one query, their recency-weighted mean).",
    )
    history_window: int = Field(20, ge=1, description="Most recent history items used.")
    history_half_life: float = Field(
        20.0, gt=0, description="Recency weight halves every this many items back."
    )
    exact_max_items: int = Field(
        20_000,
        ge=0,
        description="Catalogs up to this size are searched exactly over an in-memory copy "
        "of their vectors (faster than HNSW there, and exact); larger ones through Chroma's "
        "HNSW graph, except that a filter keeping at most this many items is scored exactly "
        "from the index's vector table. 0: always HNSW.",
    )
    max_overfetch: int = Field(
        1000,
        ge=0,
        description="Filtered queries fetch up to this many unfiltered neighbours and filter "
        "them here before falling back to a Chroma `where` query (0: always `where`).",
    )
    similar_space: Literal["auto", "text", "cowatch", "blend"] = Field(
        "auto",
        description="What 'more like this' and history similarity search: text (look-alike "
        "descriptions), cowatch (the item encoder's space: what the same people liked), blend "
        "(both, weighted as chosen on valid), or auto: the blend when `recagent train "
        "item-encoder` made an encoder that beat the text vectors on valid (its weight may "
        "come out all text or all co-watch), else the text index.",
    )


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServerConfig(Section):
    """`[server]`: `recagent serve`, or RECAGENT_SERVER__<KEY>."""

    host: str = Field(
        "127.0.0.1", description="Address to bind (anything but loopback needs an API key)."
    )
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(
        None, description="Clients send it as `Authorization: Bearer <key>`."
    )
    session_ttl_s: float = Field(
        7 * 24 * 3600.0, gt=0, description="An idle conversation is forgotten after this long."
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body accepted.")
    max_live_sessions: int = Field(
        1000, ge=1, description="Conversations kept in memory; older ones wait in the store."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Server processes sharing the port and the stored conversations (each "
        "loads the dataset's models).",
    )
    turn_threads: int = Field(
        32, ge=1, le=256, description="Turns that may run at once in each process (threads)."
    )
    lookup_threads: int = Field(
        8,
        ge=1,
        le=256,
        description="Quick lookups (items, profiles, a conversation's state) that may run at "
        "once in each process, apart from turns: slow turns never hold them up.",
    )
    sse_keepalive_s: float = Field(
        15.0,
        gt=0,
        description="A streamed turn sends an SSE comment after this many quiet seconds, so "
        "that proxies keep the connection open.",
    )
    stream_tokens: bool = Field(
        True, description="Stream the model's tokens as it writes (LLM mode, SSE clients)."
    )


class Settings(BaseSettings):
    """Everything a run of recagent can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="RECAGENT_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = Field(default_factory=default_home, description="Workspace directory.")
    dataset: str = Field("ml-100k", description="Dataset used when --dataset is not given.")
    download_mirror: str | None = Field(
        None,
        description="Base URL to fetch MovieLens archives from instead of the official site "
        "(archives are still checked against their pinned SHA-256).",
    )
    index: IndexConfig = Field(default_factory=IndexConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def find_config_file(home: Path | None = None) -> Path | None:
    """The TOML file to read, if any (see the module docstring for the search order)."""
    explicit = os.environ.get("RECAGENT_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"RECAGENT_CONFIG points at {path}, which is not a file")
        return path
    candidates = [Path.cwd() / CONFIG_FILE_NAME]
    env_home = os.environ.get("RECAGENT_HOME")
    base = home or (Path(env_home).expanduser() if env_home else default_home())
    candidates.append(base / CONFIG_FILE_NAME)
    return next((p for p in candidates if p.is_file()), None)


def load_settings(**overrides: Any) -> Settings:
    """Build settings; `overrides` are CLI values (None means 'not given')."""
    given = {k: v for k, v in overrides.items() if v is not None}
    path = find_config_file(given.get("home"))
    if path is not None:
        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc

    class _Configured(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        settings = _Configured(**given)
    except ValidationError as exc:
        where = f" (from {path})" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings{where}: {problems}") from exc
    return settings


__all__ = [
    "CONFIG_FILE_NAME",
    "LOOPBACK_HOSTS",
    "AgentConfig",
    "EmbedderName",
    "IndexConfig",
    "LLMConfig",
    "Section",
    "ServerConfig",
    "Settings",
    "default_home",
    "load_settings",
]
