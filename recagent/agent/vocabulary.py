"""The words a turn is read by, in one place: numbers, ordinals, negation and reference cues,
decades, stopwords and filler. The rule reader, the validator of the model's reading and the
guard all use these, so what one of them understands the others cannot miss.
"""

from __future__ import annotations

import re

NUMBERS: dict[str, int] = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "twenty-five": 25,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "a dozen": 12,
    "dozen": 12,
    "half a dozen": 6,
    "a few": 3,
    "a couple of": 2,
    "a couple": 2,
    "couple of": 2,
    "couple": 2,
    "a pair of": 2,
    "several": 5,
    "a handful of": 5,
}
"""Count words, longest first in patterns ("a couple of" before "a couple")."""

ORDINALS: dict[str, int] = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "last": -1,
}

EARLIEST_YEAR = 1870  # no release year is older

NUMBER = (
    r"(\d{1,3}|" + "|".join(re.escape(w) for w in sorted(NUMBERS, key=len, reverse=True)) + r")"
)
"""A count in digits (at most three: "1995 films" is a year) or words."""

NEGATION: frozenset[str] = frozenset(
    {
        "no",
        "not",
        "without",
        "except",
        "excluding",
        "exclude",
        "avoid",
        "nothing",
        "non",
        "minus",
        "skip",
        "hate",
        "dont",
        "don't",
        "never",
        "less",
        "zero",
    }
)
"""Words that turn the genre or taste after them into something not wanted."""

INTENSIFIERS: frozenset[str] = frozenset(
    {"too", "very", "so", "overly", "really", "that", "as", "remotely", "even"}
)

STOPWORDS: frozenset[str] = frozenset(
    {
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "to",
        "for",
        "with",
        "is",
        "it",
        "its",
        "this",
        "that",
        "from",
        "by",
        "as",
        "at",
        "be",
        "are",
        "was",
        "some",
        "something",
        "movie",
        "movies",
        "film",
        "films",
    }
)
"""Words that carry no claim and no taste."""

FILLER: frozenset[str] = STOPWORDS | {
    "recommend",
    "recommendations",
    "recommendation",
    "me",
    "please",
    "i",
    "want",
    "wanna",
    "would",
    "like",
    "watch",
    "see",
    "looking",
    "give",
    "show",
    "suggest",
    "any",
    "good",
    "great",
    "haven't",
    "havent",
    "seen",
    "yet",
    "can",
    "you",
    "could",
    "find",
    "get",
    "tonight",
    "today",
    "need",
    "what",
    "should",
    "there",
    "new",
    "my",
    "our",
    "us",
    "we",
    "but",
    "ones",
    "one",
    "also",
    "maybe",
    "perhaps",
    "kind",
    "sort",
    "type",
    "style",
    "picks",
    "pick",
    "titles",
    "top",
    "best",
    "list",
    # conversation and opinion words: how people talk, not what they want
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "bye",
    "goodbye",
    "yes",
    "yeah",
    "ok",
    "okay",
    "sure",
    "just",
    "really",
    "watched",
    "saw",
    "loved",
    "liked",
    "love",
    "enjoyed",
    "enjoy",
    "it's",
    "am",
    "i'm",
    "im",
    "i've",
    "have",
    "has",
    "do",
    "did",
    "been",
    "too",
    "so",
    "very",
    "which",
    "other",
    "others",
    "else",
    "anything",
    "open",
    "right",
    "now",
    "lately",
    "recently",
    "night",
    "last",
    "them",
    "they",
    "those",
    "these",
    "how",
    "about",
    "your",
    "if",
    "all",
    "much",
    "more",
    "next",
}
"""Words of a request that are not its taste ("recommend me some good movies")."""

# "like" is a verb after a subject or an auxiliary ("I like", "I didn't like", "would you
# like"), a preposition otherwise ("something like Heat"): only the preposition refers
_LIKE_VERB_AFTER = (
    "i",
    "i'd",
    "you",
    "we",
    "they",
    "he",
    "she",
    "would",
    "do",
    "don't",
    "dont",
    "did",
    "didn't",
    "didnt",
    "does",
    "doesn't",
    "not",
    "never",
    "really",
    "also",
    "just",
    "usually",
    "always",
    "totally",
    "genuinely",
    "might",
    "will",
    "won't",
    "wouldn't",
)
_NOT_A_VERB = "".join(rf"(?<!\b{re.escape(w)} )" for w in _LIKE_VERB_AFTER)
REFERENCE_CUE = (
    rf"(?:{_NOT_A_VERB}\blike|\bsimilar to|\bsuch as|\bas good as|\breminds? me of|"
    r"\bin the (?:vein|style|spirit) of|\balong the lines of|\bfans? of|\bsame as|\bakin to|"
    r"\bin the mou?ld of)"
)
"""Words that make the title after them a reference ("something like Heat"), never the
verb "like" ("I didn't like Heat")."""

KIND_CUES: dict[str, str] = {
    "rank": r"\b(?:rank|order|sort|prioriti[sz]e|which (?:of|one)|first)\b",
    "judge": r"\b(?:for me|good (?:pick|choice|fit|one)|worth|would i|will i|should i|might i|"
    r"my (?:kind|type|cup of tea)|suit me)\b.*\?|\?.*\b(?:for me|worth it)\b",
    "why_not": r"\bwhy (?:not|no|didn'?t|did you not|isn'?t|wasn'?t|is|was|leave|skip)\b",
}
"""The words that make a message a ranking, a verdict or a "why not" (a model's kind needs
them; a question about the person's taste needs the rule reader's own patterns)."""

_DECADE = re.compile(r"\b(?:the\s+)?(early|late|mid)?[\s-]*(?:(19|20)(\d)0|'?(\d)0)'?s\b")
DECADE = _DECADE


def decade_range(m: re.Match[str]) -> tuple[int, int]:
    """The years of a decade match of `DECADE` ("the 80s", "early 1990s")."""
    part, century, digit, short = m.group(1), m.group(2), m.group(3), m.group(4)
    if century:
        start = int(century) * 100 + int(digit) * 10
    else:
        d = int(short)
        start = (2000 if d <= 2 else 1900) + d * 10
    if part == "early":
        return start, start + 4
    if part == "late":
        return start + 5, start + 9
    if part == "mid":
        return start + 3, start + 7
    return start, start + 9


def decades(text: str) -> list[tuple[int, int]]:
    """The decades written in `text` ("the 90s", "early 1980s") as year ranges."""
    return [decade_range(m) for m in _DECADE.finditer(text.lower())]


def joins_with_or(text: str) -> bool:
    """The person offers alternatives ("comedy or drama", "either ...")."""
    return bool(re.search(r"\b(?:or|either|any of)\b", text.lower()))


def number_value(token: str) -> int | None:
    """A count token ("12", "twelve", "a few") as a number, None when it is none."""
    token = token.strip().lower()
    if token.isdigit():
        return int(token)
    return NUMBERS.get(token)


def is_year(n: int) -> bool:
    """Whether a number reads as a release year rather than a count."""
    return EARLIEST_YEAR <= n <= 2100


def says_number(message: str, n: int) -> bool:
    """The message writes the count `n` in digits or in words ("5", "eleven", "a few")."""
    low = message.lower()
    if re.search(rf"(?<![\d(]){n}(?!\d)", low) and not is_year(n):
        return True
    return any(
        value == n and re.search(rf"\b{re.escape(word)}\b", low) for word, value in NUMBERS.items()
    )


__all__ = [
    "DECADE",
    "EARLIEST_YEAR",
    "FILLER",
    "INTENSIFIERS",
    "KIND_CUES",
    "NEGATION",
    "NUMBER",
    "NUMBERS",
    "ORDINALS",
    "REFERENCE_CUE",
    "STOPWORDS",
    "decade_range",
    "decades",
    "is_year",
    "joins_with_or",
    "number_value",
    "says_number",
]
