"""The blended similarity space: "more like this" answers look-alikes the same people liked.

The text space finds items that look alike (same kind, same feel, by their description); the
co-watch space (the item encoder's, recagent.represent.encoder) finds what the same people
liked, whatever it is, so alone it answers "more like Star Wars" with Fargo. The blend ranks
in two steps on the two cosines: a pool of the `lookalikes` items nearest by text and the
`pool` - `lookalikes` nearest by w1 x text + (1 - w1) x co-watch (mostly what the same people
liked), then that pool ordered by w2 x text + (1 - w2) x co-watch (look-alikes first). With
w1 = w2 and no look-alikes it is one weighted sum. (One weighted sum cannot keep both: on
ML-100k's valid pairs the best of them kept 83% of the co-watch recall and 83% of the text
space's genre overlap; see benchmarks/RESULTS.md.)

The settings are chosen on the valid split's held-out pairs, per dataset and per encoder
(`weigh`): among one-step weights 0, 0.1, ..., 1 and two-step settings (pools of k and 2k,
0, k/10 or k/5 of them by text), the one whose weaker relative score is best,
min(R@k / best R@k, genre@10 / best genre@10) (`item_to_item`: recall of what people went on
to consume, at the cutoff the encoder was chosen by, k = 50 by default, and the genre overlap
of an item with its top 10); recall alone for a catalog without genres. Similarity to a
history (what to watch next, not "more like this") and to films a person said they liked (a
taste: `similar_items` with `liked`) keeps to recall: the one-step weight with the best
valid recall (on ML-100k all co-watch; the blend's look-alikes cost the `vector` pipeline
60% of its full-rank NDCG@10 there, and the planner its redial-dev R@1). The choice, the valid table
behind it are saved beside the encoder (`similar-blend.json`,
keyed by the encoder and the text vectors).

Stored vectors: each item's two unit vectors concatenated, each scaled by sqrt(1/2), so one
Chroma collection (space `blend`, built once per encoder) serves any weights: a query's
parts are re-weighted for the pool (`ItemIndex` `PartRanking`), and the pool is re-scored
from the stored parts. Which part carried a hit (what its explanation says): a part counts
when the hit is among the 20 nearest items, in that space, of the item it is near ("looks
like Star Wars", "liked by the same people"); when neither holds, the nearer one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.index.item_index import PartRanking, VectorPart
from recagent.progress import Reporter, SilentReporter
from recagent.represent.encoder import ItemEncoder, encode
from recagent.represent.encoder_config import checkpoint_path
from recagent.represent.item_to_item import (
    GENRE,
    YEARS,
    HeldOutPairs,
    LookAlike,
    ScoreRows,
    heldout_pairs,
    mean_known,
    per_user,
    scan_many,
    train_counts,
)
from recagent.represent.text_vectors import embed_cached, text_key, text_vectors
from recagent.workspace import Workspace, atomic_write_json

FILE = "similar-blend.json"
ONE_STEP = tuple(round(0.1 * i, 1) for i in range(11))
POOL_WEIGHTS = (0.0, 0.1, 0.2, 0.3)
POOLS = (1, 2)  # x the recall cutoff k
LOOKALIKES = (0.0, 0.1, 0.2)  # x k
ORDER_WEIGHTS = (0.6, 0.8, 1.0)
SHARE = 0.5  # of each part in the stored vectors
MAX_CHOICE_USERS = 5000  # valid users the choice is made on (a seeded sample beyond that)
OFFSET = 4.0  # lifts the pool above every other item in score rows (cosines are in [-1, 1])


class BlendSetting(BaseModel):
    """Two steps over text and co-watch cosines: a pool of the `lookalikes` items nearest by
    text alone and the `pool` - `lookalikes` nearest by text weight `w1`, ordered by text
    weight `w2` (co-watch weighs 1 - w). w1 == w2 and no look-alikes: one weighted sum."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    w1: float = Field(ge=0, le=1)
    pool: int = Field(0, ge=0)
    w2: float = Field(ge=0, le=1)
    lookalikes: int = Field(0, ge=0)

    @property
    def label(self) -> str:
        """In words: "text 0.4 + co-watch 0.6", or "5 by text + 45 by co-watch, ordered by
        text"."""
        if self.one_step:
            return _mix(self.w1)
        alike = f"{self.lookalikes} by text + " if self.lookalikes else ""
        rest = self.pool - self.lookalikes
        return f"{alike}{rest} by {_mix(self.w1)}, ordered by {_mix(self.w2)}"

    @property
    def one_step(self) -> bool:
        return self.w1 == self.w2 and not self.lookalikes

    @property
    def space(self) -> str:
        """What it amounts to: `text` (all text), `cowatch` (all co-watch) or `blend`."""
        if self.one_step and self.w1 in (0.0, 1.0):
            return "text" if self.w1 == 1.0 else "cowatch"
        return "blend"

    def ranking(self) -> PartRanking:
        return PartRanking(
            recall={"text": self.w1, "cowatch": 1 - self.w1},
            pool=0 if self.one_step else self.pool,
            order={"text": self.w2, "cowatch": 1 - self.w2},
            lookalikes={"text": self.lookalikes} if self.lookalikes else {},
        )


def _mix(w: float) -> str:
    if w in (0.0, 1.0):
        return "text" if w else "co-watch"
    return f"text {w:.1f} + co-watch {1 - w:.1f}"


def settings_grid(k: int = 50) -> list[BlendSetting]:
    """Every setting `weigh` tries for recall at `k` (pools of k and 2k items)."""
    one = [BlendSetting(w1=w, w2=w) for w in ONE_STEP]
    two = [
        BlendSetting(w1=w1, pool=pool * k, w2=w2, lookalikes=round(m * k))
        for w1 in POOL_WEIGHTS
        for pool in POOLS
        for m in LOOKALIKES
        for w2 in ORDER_WEIGHTS
        if w2 > w1 or m
    ]
    return list({s.label: s for s in one + two}.values())


class BlendChoice(BaseModel):
    """The blend chosen on valid for one encoder, and what chose it."""

    encoder_id: str
    text_key: str
    setting: BlendSetting
    history: BlendSetting = Field(
        default_factory=lambda: BlendSetting(w1=0.0, w2=0.0),
        description="Near a history (what comes next): the one-step weight with the best "
        "valid recall.",
    )
    recall: str = Field("R@50", description="The recall it was chosen by (the encoder's).")
    valid: dict[str, dict[str, float]] = Field(
        description="Per setting label: valid recall, genre@10 (Jaccard) and years@10."
    )
    rule: str = "max of min(recall / best recall, genre@10 / best genre@10) on valid"


def stored_vectors(text: np.ndarray, cowatch: np.ndarray) -> np.ndarray:
    """Rows of unit `text` and `cowatch` vectors as one unit vector each (equal shares)."""
    return np.concatenate([math.sqrt(SHARE) * text, math.sqrt(SHARE) * cowatch], axis=1).astype(
        np.float32
    )


def blended_rows(
    text_sims: np.ndarray, cowatch_sims: np.ndarray, queries: np.ndarray, setting: BlendSetting
) -> np.ndarray:
    """Score rows of `setting` from the two similarity rows of `queries` (item_idx): the pool
    (never padding or the query itself) above everything else, in its order."""
    first = setting.w1 * text_sims + (1 - setting.w1) * cowatch_sims
    if setting.one_step:
        return first
    second = setting.w2 * text_sims + (1 - setting.w2) * cowatch_sims
    inside = _top_mask(first, queries, setting.pool - setting.lookalikes)
    if setting.lookalikes:
        inside |= _top_mask(text_sims, queries, setting.lookalikes)
    return np.where(inside, OFFSET + second, first - OFFSET)


def _top_mask(scores: np.ndarray, queries: np.ndarray, n: int) -> np.ndarray:
    """True at each row's `n` highest scores (never column 0 or the row's query)."""
    ranked = np.array(scores, dtype=np.float64)
    ranked[:, 0] = -np.inf
    ranked[np.arange(len(queries)), queries] = -np.inf
    n = min(n, ranked.shape[1] - 2)
    inside = np.zeros(ranked.shape, dtype=bool)
    if n > 0:
        top = np.argpartition(-ranked, n - 1, axis=1)[:, :n]
        np.put_along_axis(inside, top, True, axis=1)
    return inside


def blend_scores(text: np.ndarray, cowatch: np.ndarray, setting: BlendSetting) -> ScoreRows:
    """Score rows of `setting` over unit `text` and `cowatch` vectors (row = item_idx)."""
    t, c = np.asarray(text, dtype=np.float32), np.asarray(cowatch, dtype=np.float32)
    return lambda q: blended_rows(t[q] @ t.T, c[q] @ c.T, q, setting)


def weigh(
    dataset: Dataset,
    text: np.ndarray,
    cowatch: np.ndarray,
    pairs: HeldOutPairs,
    k: int = 50,
    grid: Sequence[BlendSetting] | None = None,
) -> tuple[BlendSetting, dict[str, dict[str, float]]]:
    """The setting chosen on `pairs` by Recall@k and genre@10 (see the module docstring),
    and the table behind it."""
    grid = list(grid or settings_grid(k))
    recall = f"R@{k}"
    t, c = np.asarray(text, dtype=np.float32), np.asarray(cowatch, dtype=np.float32)

    def block(q: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        ts, cs = t[q] @ t.T, c[q] @ c.T
        return ((s.label, blended_rows(ts, cs, q, s)) for s in grid)

    counts, look = train_counts(dataset), LookAlike(dataset)
    table: dict[str, dict[str, float]] = {}
    for label, found in scan_many(block, pairs).items():
        rows = per_user(found, pairs, counts, look, ks=(k,))
        table[label] = {m: mean_known(rows.values[m]) for m in (recall, GENRE, YEARS)}
    best_recall = max(v[recall] for v in table.values())
    genres = look.has_genres and all(math.isfinite(v[GENRE]) for v in table.values())
    best_genre = max(v[GENRE] for v in table.values()) if genres else math.nan
    balance = _balance(recall, best_recall, best_genre if genres else None)
    # ties: the better recall, then the simpler setting (one step first, in grid order)
    chosen = max(
        enumerate(grid),
        key=lambda e: (round(balance(table[e[1].label]), 6), table[e[1].label][recall], -e[0]),
    )[1]
    return chosen, table


def _balance(
    metric: str, best_recall: float, best_genre: float | None
) -> Callable[[dict[str, float]], float]:
    def score(row: dict[str, float]) -> float:
        recall = row[metric] / best_recall if best_recall > 0 else 0.0
        if best_genre is None or best_genre <= 0:
            return recall
        return min(recall, row[GENRE] / best_genre)

    return score


def sample_users(pairs: HeldOutPairs, most: int, seed: int = 0) -> HeldOutPairs:
    """`pairs` of at most `most` users (a seeded sample of them), so the choice stays a
    matter of seconds on a catalog with many users."""
    users = np.unique(pairs.users)
    if len(users) <= most:
        return pairs
    kept = np.random.default_rng(seed).choice(users, size=most, replace=False)
    keep = np.isin(pairs.users, kept)
    return HeldOutPairs(pairs.queries[keep], pairs.targets[keep], pairs.users[keep])


def saved_blend(
    workspace: Workspace, dataset: Dataset, config: IndexConfig, encoder: ItemEncoder
) -> BlendChoice | None:
    """The choice saved for this encoder and these text vectors, if any (nothing computed)."""
    path = checkpoint_path(workspace, dataset).with_name(FILE)
    try:
        saved = BlendChoice.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none yet, or unreadable: choose again
    key = text_key(dataset, config, encoder.base)
    return saved if (saved.encoder_id, saved.text_key) == (encoder.encoder_id, key) else None


def choose_blend(
    workspace: Workspace,
    dataset: Dataset,
    config: IndexConfig,
    encoder: ItemEncoder,
    reporter: Reporter | None = None,
    window: int = 10,
) -> BlendChoice:
    """The saved choice for this encoder and these text vectors, or a new one (chosen on the
    valid split, then saved)."""
    report = reporter or SilentReporter()
    saved = saved_blend(workspace, dataset, config, encoder)
    if saved is not None:
        return saved
    vectors = text_vectors(workspace, dataset, config, encoder.base, report)
    pairs = sample_users(heldout_pairs(dataset, "valid", window), MAX_CHOICE_USERS)
    if not len(pairs):
        raise ArtifactError(f"{dataset.name} has no valid cases to choose the blend on")
    cowatch = encode(encoder.projection, vectors.matrix)
    with report.stage("choosing the blend of text and co-watch similarity on valid", None):
        k = encoder.select_k
        setting, table = weigh(dataset, vectors.matrix, cowatch, pairs, k)
    one_step = [s for s in settings_grid(k) if s.one_step]
    history = max(one_step, key=lambda s: (round(table[s.label][f"R@{k}"], 6), -s.w1))
    choice = BlendChoice(
        encoder_id=encoder.encoder_id,
        text_key=vectors.key,
        setting=setting,
        history=history,
        recall=f"R@{k}",
        valid=table,
    )
    path = checkpoint_path(workspace, dataset).with_name(FILE)
    try:
        atomic_write_json(path, choice.model_dump())
    except OSError as exc:
        raise ArtifactError(f"cannot write {path}: {exc}") from exc
    return choice


class BlendEmbedder:
    """The blend's stored vectors as an `Embedder` (what its collection is built with): the
    base text vector and the encoder's vector of each text, in equal shares. Base vectors
    come through the workspace's per-text cache, so building the collection re-embeds
    nothing."""

    def __init__(self, encoder: ItemEncoder, choice: BlendChoice) -> None:
        self.encoder = encoder
        self.choice = choice

    @property
    def name(self) -> str:
        return f"blend:{self.encoder.name}"

    @property
    def dim(self) -> int:
        return int(self.encoder.base.dim + self.encoder.dim)

    def parts(self) -> list[VectorPart]:
        """Where each space sits in the stored vectors (`stored_vectors`)."""
        text_dim = self.encoder.base.dim
        return [
            VectorPart("text", 0, text_dim, SHARE),
            VectorPart("cowatch", text_dim, self.dim, SHARE),
        ]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        base = embed_cached(self.encoder.workspace, self.encoder.base, list(texts))
        return stored_vectors(base, encode(self.encoder.projection, base))


__all__ = [
    "FILE",
    "BlendChoice",
    "BlendEmbedder",
    "BlendSetting",
    "blend_scores",
    "blended_rows",
    "choose_blend",
    "sample_users",
    "saved_blend",
    "settings_grid",
    "stored_vectors",
    "weigh",
]
