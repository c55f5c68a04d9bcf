"""Genre names as people write them ("sci fi", "romcom", "kids") -> the catalog's genres."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from recagent.errors import ConfigError

# Words people use -> genre names as MovieLens spells them (matched case-insensitively,
# ignoring punctuation, against whatever genres the catalog really has).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "scifi": ("Sci-Fi",),
    "science fiction": ("Sci-Fi",),
    "sf": ("Sci-Fi",),
    "space": ("Sci-Fi",),
    "romcom": ("Romance", "Comedy"),
    "romantic comedy": ("Romance", "Comedy"),
    "romantic": ("Romance",),
    "love story": ("Romance",),
    "funny": ("Comedy",),
    "comedies": ("Comedy",),
    "scary": ("Horror",),
    "horror": ("Horror",),
    "kids": ("Children's", "Children"),
    "children": ("Children's", "Children"),
    "family": ("Children's", "Children"),
    "animated": ("Animation",),
    "cartoon": ("Animation",),
    "cartoons": ("Animation",),
    "anime": ("Animation",),
    "noir": ("Film-Noir",),
    "film noir": ("Film-Noir",),
    "docs": ("Documentary",),
    "documentaries": ("Documentary",),
    "doc": ("Documentary",),
    "musicals": ("Musical",),
    "westerns": ("Western",),
    "cowboy": ("Western",),
    "thrillers": ("Thriller",),
    "suspense": ("Thriller",),
    "mysteries": ("Mystery",),
    "whodunit": ("Mystery",),
    "detective": ("Mystery",),
    "crime": ("Crime",),
    "gangster": ("Crime",),
    "heist": ("Crime",),
    "war": ("War",),
    "dramas": ("Drama",),
    "action": ("Action",),
    "adventures": ("Adventure",),
    "fantasy": ("Fantasy",),
    "magic": ("Fantasy",),
}


def norm(text: str) -> str:
    """Lowercase, letters and digits only, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _squash(text: str) -> str:
    return norm(text).replace(" ", "")


class GenreResolver:
    """Resolves free-form genre words against one catalog's genre list."""

    def __init__(self, genres: Iterable[str]) -> None:
        self.genres = sorted(set(genres))
        self._canonical = {_squash(g): g for g in self.genres}
        phrases = {norm(g) for g in self.genres} | set(SYNONYMS)
        phrases |= {p + "s" for p in list(phrases)} | {p.replace(" ", "") for p in phrases}
        words = sorted(phrases, key=len, reverse=True)
        self.alternatives = "|".join(r"[\s-]+".join(map(re.escape, w.split())) for w in words)
        """Regex alternatives matching any genre word or synonym ('sci-fi', 'romcoms'...)."""
        self.pattern = re.compile(rf"\b({self.alternatives})\b")

    def mentions(self, text: str) -> set[str]:
        """Catalog genres named in `text` (lowercase it first for case-insensitive matching)."""
        return {g for m in self.pattern.finditer(text.lower()) for g in self.expand(m.group(1))}

    def expand(self, word: str) -> list[str]:
        """All catalog genres a word or phrase means ('romcom' -> Romance, Comedy)."""
        key = _squash(word)
        exact = self._canonical.get(key) or self._canonical.get(key.removesuffix("s"))
        if exact:
            return [exact]
        phrase = norm(word)
        targets = SYNONYMS.get(phrase) or SYNONYMS.get(phrase.removesuffix("s"), ())
        return [t for t in targets if t in self.genres]

    def resolve_all(self, words: Iterable[str]) -> list[str]:
        """Catalog genres for all words, in order; an unknown word is a clear error."""
        out: list[str] = []
        for word in words:
            found = self.expand(word)
            if not found:
                raise ConfigError(
                    f"unknown genre {word!r}; genres in this catalog: {', '.join(self.genres)}"
                )
            out.extend(g for g in found if g not in out)
        return out


@lru_cache(maxsize=32)
def resolver_for(genres: tuple[str, ...]) -> GenreResolver:
    """One shared resolver per genre list (building one compiles a regex: ~0.7 ms)."""
    return GenreResolver(genres)


__all__ = ["SYNONYMS", "GenreResolver", "norm", "resolver_for"]
