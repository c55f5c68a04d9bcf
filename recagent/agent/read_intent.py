"""What kind of answer a message asks for, by rule, and the titles it asks about:

- rank: "rank these for me: Heat, Casino, Fargo", "which of these should I watch first: ..."
- judge: "is Titanic a good pick for me?", "would I like Alien?", "should I watch Heat?"
- profile: "what do you know about my taste?", "what kind of movies do I like?"
- why_not: "why not Fargo?", "why didn't you recommend Heat?"
- between (a recommend request): "something between Alien and Toy Story", "Heat meets Fargo"

Everything else asks for items to try (recommend)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from recagent.agent.read_titles import Found, TitleReader
from recagent.agent.request import Intent

_PROFILE = re.compile(
    r"\b(?:what do you know about (?:me|my (?:taste|tastes|preferences|profile|history))"
    r"|what(?:'s| is| are) my (?:taste|tastes|preferences|profile)"
    r"|what (?:kinds?|sorts?|types?) of (?:movies|films|things|stuff|items|products|shows) "
    r"do i (?:usually |tend to |typically )?(?:like|enjoy|watch|prefer|love)"
    r"|what do i (?:usually |tend to |typically )?(?:like|enjoy|watch|prefer)\b(?!\s+\w)"
    r"|describe my (?:taste|tastes|preferences|profile)"
    r"|(?:tell me about|summari[sz]e|show me|explain) my (?:taste|tastes|preferences|profile)"
    r"|what does my (?:history|profile) say|who am i as a (?:viewer|customer|reader))"
)
_WHY_NOT = re.compile(
    r"\bwhy (?:not|no|not also|didn'?t you (?:recommend|suggest|include|pick|list|show|add)"
    r"|did you not (?:recommend|suggest|include|pick|list|show)|isn'?t|wasn'?t|is not|was not"
    r"|don'?t you (?:recommend|suggest)|did you (?:leave out|skip|drop|miss)"
    r"|(?:no|leave out|skip|skipped|left out))\s+(?P<rest>[^?!.]+)"
)
_JUDGE = re.compile(
    r"(?:^|[.!?;]\s+|\b(?:so|and|but|then|hey|ok|okay)\s+)"  # a question's first words
    r"(?:is|would|will|should|could|do you think|how about|what about|what do you think of)"
    r"\b(?P<rest>[^?!]*?)"
    r"(?:\b(?:a |an )?(?:good|great|right|decent|nice) (?:pick|choice|fit|match|idea|one|watch)"
    r"(?: for me)?|\bworth (?:it|watching|a watch|seeing|my time)|\bfor me\b"
    r"|\bmy (?:kind|type|sort) of (?:movie|film|thing)|\bmy cup of tea|\bsuit me|\bgood for me)"
)
_JUDGE_VERB = re.compile(
    r"(?:^|[.!?;,]\s*|\b(?:so|and|but|then)\s+)"
    r"(?:would|will|do you think|should|might) i (?:like|enjoy|love|watch|see|try|be into)"
    r"\s+(?P<rest>[^?!.]+)"
)
_RANK = re.compile(
    r"\b(?:rank|order|sort|prioriti[sz]e|rate)\b(?:\s+(?:these|them|those|the following|this "
    r"list|my list|for me|please|movies|films|titles|in order))*\s*[:\-]?\s*(?P<rest>.+)$"
    r"|\bwhich (?:of|one of) (?:these|them|those|the following)\b[^:]*:\s*(?P<rest2>.+)$"
    r"|\bwhich (?:should|would|do) i (?:watch|see|pick|choose) first\b[^:]*:\s*(?P<rest3>.+)$"
)
_BETWEEN = re.compile(
    r"\b(?:(?:a )?cross between|halfway between|somewhere between|in between|between|"
    r"(?:a )?mix(?:ture)? of|(?:a )?blend of|(?:a )?combination of)\s+(?P<rest>[^,;.!?]+)"
    r"|(?P<meets>[^,;.!?]+?)\s+meets\s+(?P<rest2>[^,;.!?]+)"
)


@dataclass
class IntentReading:
    """The kind of answer asked for, the titles asked about (with what the person wrote for
    those the catalog lacks), and the span the intent's own words took."""

    intent: Intent = "recommend"
    targets: list[Found] = field(default_factory=list)
    between: list[Found] = field(default_factory=list)
    span: tuple[int, int] | None = None


def read_intent(text: str, low: str, titles: TitleReader) -> IntentReading:
    """The intent of `text` (`low` = its lower-cased form, same offsets)."""
    if m := _PROFILE.search(low):
        return IntentReading("profile", span=m.span())
    if m := _RANK.search(low):
        group = next(g for g in ("rest", "rest2", "rest3") if m.group(g) is not None)
        start, end = m.start(group), m.end(group)
        colon = text.find(":", start, end)
        if (
            colon >= 0
            and "," not in text[start:colon]
            and not titles.lookup(text[start:colon], 90.0)
        ):
            start = colon + 1  # "order these by what I'd like most: A, B, C"
        listed = titles.listed(text, start, end)
        if sum(f.item_id is not None for f in listed) >= 2:
            return IntentReading("rank", targets=listed, span=m.span())
    if m := _WHY_NOT.search(low):
        found = titles.best_in(text, m.start("rest"), m.end("rest"))
        if found is not None:
            return IntentReading("why_not", targets=[found], span=(m.start(), found.end))
    for pattern in (_JUDGE_VERB, _JUDGE):
        if m := pattern.search(low):
            found = titles.best_in(text, m.start("rest"), m.end("rest"))
            if found is not None:
                return IntentReading("judge", targets=[found], span=m.span())
    if m := _BETWEEN.search(low):
        group = "rest" if m.group("rest") is not None else "rest2"
        if group == "rest2":
            first = titles.best_in(text, m.start("meets"), m.end("meets"))
            second = titles.best_in(text, m.start("rest2"), m.end("rest2"))
            both = [f for f in (first, second) if f is not None]
        else:
            both = [f for f in titles.listed(text, m.start(group), m.end(group)) if f.item_id]
        if len(both) >= 2:
            return IntentReading("recommend", between=both, span=m.span())
    return IntentReading()


__all__ = ["IntentReading", "read_intent"]
