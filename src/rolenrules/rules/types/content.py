"""Content rules (`content:`): words the reply must or must not use, a required disclaimer, no
links, citation markers.

Words and phrases given as parameters are literal (not regular expressions) and match whole
words, ignoring case.
"""

from __future__ import annotations

import random
import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from rolenrules.rules import _text
from rolenrules.rules.base import CheckContext, NoParams, Params, RuleType
from rolenrules.rules.types.ifeval import KEYWORD_POOL

Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]

#: Sampling pools. They share no word with KEYWORD_POOL and hold no first-person word, so
#: sampled rules never contradict each other (tests check this).
FORBIDDEN_POOL = ("basically", "literally", "actually", "obviously", "simply", "guarantee", "cheap", "awesome",
                  "delve", "leverage", "utilize", "honestly")
DISCLAIMERS = (
    "This is general information, not professional advice.",
    "Consult a qualified professional before acting on this information.",
    "Information may be out of date; verify it independently.",
    "This content is for educational purposes only.",
)



class WordsParams(Params):
    words: tuple[Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\w")], ...] = Field(min_length=1)


class ForbiddenTerms(RuleType[WordsParams]):
    id = "content:forbidden_words"
    category = "content"
    english_only = True
    params_model = WordsParams
    summary = "None of the words or phrases appears (whole words, any case, literal)."

    def _sample(self, rng: random.Random) -> dict:
        return {"words": sorted(rng.sample(FORBIDDEN_POOL, rng.randint(1, 3)))}

    def phrasings(self, params: WordsParams) -> list[str]:
        listed = ", ".join(f'"{w}"' for w in params.words)
        return [f"Never use the words {listed}.", f"Do not say {listed} in any reply.",
                f"Avoid these words entirely: {listed}."]

    def found(self, params: WordsParams, text: str) -> list[str]:
        return [w for w in params.words if _text.phrase_regex(w).search(text)]

    def test(self, params: WordsParams, text: str, context: CheckContext) -> bool:
        return not self.found(params, text)

    def explain(self, params: WordsParams, response: str, context: CheckContext) -> str | None:
        found = self.found(params, response)
        return f"used: {', '.join(found)}" if found else None


class KeywordParams(Params):
    keyword: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\w")]


class MentionKeyword(RuleType[KeywordParams]):
    id = "content:mention_keyword"
    category = "content"
    english_only = True
    params_model = KeywordParams
    declared_conflicts = ("keywords:forbidden_words", "keywords:frequency")
    summary = "Mentions the keyword (whole word, any case, literal)."

    def _sample(self, rng: random.Random) -> dict:
        return {"keyword": rng.choice(KEYWORD_POOL)}

    def phrasings(self, params: KeywordParams) -> list[str]:
        k = params.keyword
        return [f'Always mention "{k}" in your reply.', f'Every answer must include the word "{k}".',
                f'Work the word "{k}" into each response.']

    def test(self, params: KeywordParams, text: str, context: CheckContext) -> bool:
        return bool(_text.phrase_regex(params.keyword).search(text))


class DisclaimerParams(Params):
    text: Text


class RequiredDisclaimer(RuleType[DisclaimerParams]):
    id = "content:required_disclaimer"
    category = "safety"
    english_only = True
    params_model = DisclaimerParams
    summary = "Contains the disclaimer (words compared in order; case and punctuation ignored)."

    def _sample(self, rng: random.Random) -> dict:
        return {"text": rng.choice(DISCLAIMERS)}

    def phrasings(self, params: DisclaimerParams) -> list[str]:
        d = params.text
        return [f'Include this disclaimer in every reply: "{d}"', f'Always add the disclaimer "{d}"',
                f'Each answer must contain the sentence "{d}"']

    def test(self, params: DisclaimerParams, text: str, context: CheckContext) -> bool:
        wanted = _text.normalise(params.text)
        return bool(wanted) and f" {wanted} " in f" {_text.normalise(text)} "


_URL_RE = re.compile(
    r"(?i:\b(?:https?|ftp)://\S+|\bwww\.[a-z0-9-]+\.\S+"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|gov|edu|ai|dev|info|co\.uk|uk|de|fr|app)\b(?:/\S*)?)"
)


class NoUrls(RuleType[NoParams]):
    id = "content:no_urls"
    category = "content"
    summary = "No links: no http(s)/ftp URLs, www. addresses or bare domains (example.com)."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Never include URLs or links.", "Do not share web addresses in your replies.",
                "Answer without any links or website addresses."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return not _URL_RE.search(text)


class CitationParams(Params):
    style: Literal["numeric", "footnote"] = "numeric"
    min_count: Annotated[int, Field(ge=1)] = 1


_CITATION_RES = {
    "numeric": re.compile(r"\[\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]"),
    "footnote": re.compile(r"\[\^\d{1,3}\]"),
}
_CITATION_EXAMPLES = {"numeric": "[1]", "footnote": "[^1]"}


class CitationMarkers(RuleType[CitationParams]):
    id = "content:citation_markers"
    category = "content"
    params_model = CitationParams
    summary = "At least N citation markers: numeric [1] or footnote [^1]."

    def _sample(self, rng: random.Random) -> dict:
        return {"style": rng.choice(("numeric", "footnote")), "min_count": rng.randint(1, 3)}

    def phrasings(self, params: CitationParams) -> list[str]:
        example, n = _CITATION_EXAMPLES[params.style], params.min_count
        plural = "markers" if n > 1 else "marker"
        return [f"Cite your sources with markers like {example}: at least {n} per reply.",
                f"Every answer must include at least {n} citation {plural} in the form {example}.",
                f"Support your claims with citation {plural} such as {example} ({n} or more)."]

    def test(self, params: CitationParams, text: str, context: CheckContext) -> bool:
        return len(_CITATION_RES[params.style].findall(text)) >= params.min_count


TYPES: tuple[RuleType, ...] = (ForbiddenTerms(), MentionKeyword(), RequiredDisclaimer(), NoUrls(), CitationMarkers())
