"""A synthetic catalog and interactions of any size, for measuring recagent at scale.

Items have a made-up title (2-4 pseudo-words), 1-3 of MovieLens' genres, a year and a line of
text ("A tense heist thriller about a lighthouse keeper in Lisbon."). Popularity follows a
power law. Each user has one or two favourite genres; their next item is, with probability
`chain_p`, one of the three items that follow the previous one in a fixed order within its
genre (a "series" a sequence model can learn), with probability `favourite_p` a popular item
of a favourite genre, else a popular item of the whole catalog. Everything is drawn from one
seed, vectorised (a million items and two million interactions take seconds), and written as
an items CSV and an interactions CSV that `recagent data prepare --items ... --interactions
...` reads like any catalog a person brings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def _listed(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


# How common each genre is as an item's first genre (roughly MovieLens' shares).
GENRE_SHARE = np.array([9, 5, 2, 3, 16, 5, 3, 20, 3, 1, 6, 1, 3, 7, 4, 8, 2, 2], dtype=float)
SYLLABLES = _listed(
    "ka ri to ma ne lo su vi da pe mo ra ti na ko be lu sa fe gi ha jo ve zu cor dan mel "
    "tor ver lin mar sel ban dor fin gal hor kel mir nor pol ren"
)
MOODS = _listed(
    "dark quiet tense gentle bleak joyful eerie warm bitter playful brooding tender "
    "violent whimsical melancholy hopeful gritty dreamlike sharp slow-burning"
)
SUBJECTS = _listed(
    "a lighthouse keeper|two estranged sisters|a retired detective|a stolen painting|"
    "a small-town mayor|an android|a travelling circus|a failed chef|a border guard|"
    "a chess prodigy|a ghost ship|a desert convoy|a jazz singer|a kidnapped heiress|"
    "a marooned crew|a school choir|a forger|a mountain village|a rookie pilot|a widow",
    "|",
)
PLACES = _listed(
    "Lisbon|Osaka|a mining town|the Arctic|Marseille|a space station|Buenos Aires|"
    "a flooded city|Bombay|the Scottish coast|a border town|Prague|the Outback|Harlem",
    "|",
)


class SyntheticConfig(BaseModel):
    """How big the synthetic data is and how its users behave."""

    model_config = ConfigDict(extra="forbid")

    items: int = Field(100_000, ge=100)
    users: int | None = Field(None, ge=10, description="Default: one per 10 items.")
    mean_length: float = Field(20.0, ge=3, description="Mean interactions per user.")
    chain_p: float = Field(0.4, ge=0, le=1)
    favourite_p: float = Field(0.4, ge=0, le=1)
    zipf: float = Field(1.0, gt=0, description="Popularity of the r-th item ~ 1 / r^zipf.")
    seed: int = 0

    @property
    def n_users(self) -> int:
        return self.users or max(10, self.items // 10)


class Synthetic:
    """Items (a DataFrame) and interactions (a DataFrame) drawn from one configuration."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        rng = np.random.default_rng(config.seed)
        self.items = _items(config.items, rng)
        self.interactions = _interactions(config, self.items, rng)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """items.csv and interactions.csv in `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        items, inter = folder / "items.csv", folder / "interactions.csv"
        self.items.drop(columns=["genre_idx"]).to_csv(items, index=False)
        self.interactions.to_csv(inter, index=False)
        return items, inter


def _words(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` pseudo-words of 2-3 syllables, capitalised."""
    syl = np.array(SYLLABLES)
    two = np.char.add(syl[rng.integers(0, len(syl), n)], syl[rng.integers(0, len(syl), n)])
    three = np.char.add(two, syl[rng.integers(0, len(syl), n)])
    words = np.where(rng.random(n) < 0.5, two, three)
    return np.char.capitalize(words)


def _items(n: int, rng: np.random.Generator) -> pd.DataFrame:
    n_words = rng.integers(2, 5, n)
    vocab = _words(max(5000, n // 4), rng)
    picks = vocab[rng.integers(0, len(vocab), (n, 4))]
    titles = [" ".join(row[:k]) for row, k in zip(picks.tolist(), n_words.tolist(), strict=True)]
    first = rng.choice(len(GENRES), n, p=GENRE_SHARE / GENRE_SHARE.sum())
    extra = rng.integers(0, len(GENRES), (n, 2))
    n_extra = rng.choice(3, n, p=[0.4, 0.4, 0.2])
    names = np.array(GENRES)
    genres = []
    for g, (a, b), k in zip(first.tolist(), extra.tolist(), n_extra.tolist(), strict=True):
        chosen = [g] + [x for x in (a, b)[:k] if x != g]
        genres.append("|".join(dict.fromkeys(names[chosen].tolist())))
    years = np.clip(np.round(2025 - rng.exponential(22, n)), 1920, 2025).astype(int)
    moods = np.array(MOODS)[rng.integers(0, len(MOODS), n)]
    subjects = np.array(SUBJECTS)[rng.integers(0, len(SUBJECTS), n)]
    places = np.array(PLACES)[rng.integers(0, len(PLACES), n)]
    text = [
        f"A {m} {names[g].lower()} story about {s} in {p}."
        for m, g, s, p in zip(
            moods.tolist(), first.tolist(), subjects.tolist(), places.tolist(), strict=True
        )
    ]
    return pd.DataFrame(
        {
            "item_id": np.arange(1, n + 1),
            "title": titles,
            "year": years,
            "genres": genres,
            "text": text,
            "genre_idx": first,
        }
    )


class _Sampler:
    """Draws items by popularity, from the whole catalog or one genre (inverse CDF)."""

    def __init__(self, popularity: np.ndarray, genre: np.ndarray) -> None:
        self.all = _cdf(popularity)
        self.members = [np.flatnonzero(genre == g) for g in range(len(GENRES))]
        self.cdfs = [_cdf(popularity[m]) for m in self.members]

    def any(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.searchsorted(self.all, rng.random(n))

    def of_genre(self, rng: np.random.Generator, genres: np.ndarray) -> np.ndarray:
        out = np.empty(len(genres), dtype=np.int64)
        for g in np.unique(genres):
            rows = np.flatnonzero(genres == g)
            if len(self.members[g]) == 0:
                out[rows] = self.any(rng, len(rows))
                continue
            picks = np.searchsorted(self.cdfs[g], rng.random(len(rows)))
            out[rows] = self.members[g][np.minimum(picks, len(self.members[g]) - 1)]
        return out


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    return cdf / cdf[-1] if len(cdf) else cdf


def _interactions(
    config: SyntheticConfig, items: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    n, users = len(items), config.n_users
    genre = items["genre_idx"].to_numpy()
    rank = rng.permutation(n)  # item i is the rank[i]-th most popular
    sampler = _Sampler(1.0 / (rank + 1.0) ** config.zipf, genre)
    # a "series" order within each genre: chain_next[i] is where item i's series goes on
    order = np.lexsort((rng.random(n), genre))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    lengths = np.maximum(3, rng.geometric(1.0 / config.mean_length, users))
    favourite = rng.choice(len(GENRES), (users, 2), p=GENRE_SHARE / GENRE_SHARE.sum())
    current = sampler.of_genre(rng, favourite[:, 0])
    time = rng.integers(1_000_000_000, 1_500_000_000, users)
    user_col, item_col, time_col = [], [], []
    alive = np.arange(users)
    for step in range(int(lengths.max())):
        alive = alive[lengths[alive] > step]
        if len(alive) == 0:
            break
        if step > 0:
            roll = rng.random(len(alive))
            nxt = sampler.any(rng, len(alive))
            fav = roll < config.chain_p + config.favourite_p
            pick = favourite[alive, rng.integers(0, 2, len(alive))]
            nxt[fav] = sampler.of_genre(rng, pick[fav])
            chain = roll < config.chain_p
            prev = current[alive[chain]]
            hop = position[prev] + rng.integers(1, 4, len(prev))
            same = genre[order[np.minimum(hop, n - 1)]] == genre[prev]
            nxt[chain] = np.where(same, order[np.minimum(hop, n - 1)], nxt[chain])
            current[alive] = nxt
            time[alive] += rng.integers(60, 86_400, len(alive))
        user_col.append(alive + 1)
        item_col.append(current[alive] + 1)
        time_col.append(time[alive].copy())
    frame = pd.DataFrame(
        {
            "user_id": np.concatenate(user_col),
            "item_id": np.concatenate(item_col),
            "timestamp": np.concatenate(time_col),
        }
    )
    frame = frame.drop_duplicates(["user_id", "item_id"], keep="first")
    return frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


__all__ = ["GENRES", "Synthetic", "SyntheticConfig"]
