"""How a person feels about a title they mention, by rule: the words around it in the same
clause ("I have seen The Conjuring (2013), I very much enjoyed it" -> liked), and how they
answer a suggestion ("Have you seen It (2017)?" - "no, but I want to" -> not seen).

The offline reader's half of conversation memory; in LLM mode the model says it instead.
"""

from __future__ import annotations

import re

from recagent.agent.request import Feeling
from recagent.agent.vocabulary import REFERENCE_CUE

CONTEXT_CHARS = 80  # how far around a title to look for cue words, within its clause

_BOUNDARY = re.compile(r"[.!?;\n]|\bbut\b|\bhowever\b|\balthough\b|\bthough\b")
_REFERENCE = re.compile(REFERENCE_CUE + r"\s*(?:the movie\s+|the film\s+)?$")
_ANYTHING_BUT = re.compile(r"\b(?:anything|everything|all|whatever)\s+but\s*$")
_NEGATED = re.compile(r"\b(?:not|no|except|without|skip|anything but|other than|besides)\s*$")
_NOT_SEEN = re.compile(
    r"\b(?:haven'?t|have not|never|not|didn'?t|did not|don'?t|do not|hasn'?t|not yet)\s+"
    r"(?:yet\s+|even\s+|ever\s+|actually\s+|really\s+)?(?:seen|watched|saw|see|watch|heard)\b"
    r"|\bnever heard of\b|\bnot seen\b|\bon my (?:list|watchlist)\b|\bwant to (?:see|watch)\b"
)
_DISLIKED = re.compile(
    r"\b(?:didn'?t|did not|don'?t|do not|wasn'?t|was not|isn'?t|is not|not|never)\s+"
    r"(?:really\s+|much\s+|that\s+|too\s+|a\s+)?(?:like|liked|enjoy|enjoyed|love|loved|care for|"
    r"into|fan|big fan|my (?:style|thing|type|cup of tea)|good|great|funny|interested|impressed)\b"
    r"|\b(?:hated?|disliked?|dislike|boring|bored|awful|terrible|horrible|overrated|worst|"
    r"stupid|dumb|lame|meh|can'?t stand|couldn'?t stand|not a fan|too scary|waste of time|"
    r"not for me|no thanks)\b"
)
_LOVED = re.compile(
    r"\b(?:love[sd]?|loving|adored?|favou?rites?|the best|amazing|awesome|excellent|fantastic|"
    r"masterpiece|brilliant|incredible|great|perfect|wonderful|so good|really good)\b"
)
_LIKED = re.compile(
    r"\b(?:like[sd]?|enjoy(?:ed|s)?|good|fun|funny|cool|nice|fan of|into|interesting|"
    r"entertaining|classic|recommend(?:ed)?|solid|decent|hilarious)\b"
)
_SEEN = re.compile(r"\b(?:seen|watched|saw|rewatch(?:ed)?|re-?watched|watching)\b")
_YES = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|ya|i have|i did|i've seen|seen it|of course|sure have|absolutely)\b"
)
_NO = re.compile(
    r"^\W*(?:no|nope|nah|not yet|never|i haven'?t|i have not|i didn'?t|i did not|haven'?t)\b"
)


def _clause(text: str, start: int, end: int, lo: int, hi: int) -> tuple[str, str]:
    """Lowercased words before and after `text[start:end]` within its clause (never past
    `lo`/`hi`, the neighbouring titles), at most `CONTEXT_CHARS` each way."""
    left = text[max(lo, start - CONTEXT_CHARS) : start].lower()
    right = text[end : min(hi, end + CONTEXT_CHARS)].lower()
    cuts = list(_BOUNDARY.finditer(left))
    if cuts:
        left = left[cuts[-1].end() :]
    cut = _BOUNDARY.search(right)
    if cut:
        right = right[: cut.start()]
    return left, right


def feeling_at(text: str, start: int, end: int, lo: int = 0, hi: int | None = None) -> Feeling:
    """How the writer of `text` feels about the title at `text[start:end]`."""
    if _ANYTHING_BUT.search(text[max(lo, start - 30) : start].lower()):
        return "disliked"
    left, right = _clause(text, start, end, lo, len(text) if hi is None else hi)
    if _REFERENCE.search(left):
        return "like_this"
    if _NEGATED.search(left):
        return "disliked"  # "not Star Wars", "anything but Titanic"
    around = f"{left} {right}"
    if _NOT_SEEN.search(around):
        return "not_seen"
    if _DISLIKED.search(around):
        return "disliked"
    if _LOVED.search(around):
        return "loved"
    if _LIKED.search(around):
        return "liked"
    if _SEEN.search(around):
        return "seen"
    return "liked"  # people name the films they like when asked what they like


def reply_feeling(reply: str) -> Feeling | None:
    """How a reply that names no title answers the suggestion before it ("Have you seen
    X?" -> "yes, loved it" / "no" / "not my style"); None when it does not say."""
    first = _BOUNDARY.split(reply.lower(), maxsplit=1)[0]
    low = reply.lower()
    if _DISLIKED.search(first):
        return "disliked"
    if _NO.search(first) or _NOT_SEEN.search(first):
        return "not_seen"
    if _YES.search(first) or _SEEN.search(first):
        if _LOVED.search(low):
            return "loved"
        return "liked" if _LIKED.search(low) else "seen"
    if _LOVED.search(first):
        return "loved"
    return None


__all__ = ["feeling_at", "reply_feeling"]
