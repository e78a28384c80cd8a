"""Literal text rules (`text:`): the reply contains, or never contains, an exact string.

Unlike `content:forbidden_words` (whole words, any case), these compare the string as Python's
`in` does: with `case_sensitive` (the default) character for character; without it, both sides
casefolded (so "STRASSE" contains "straße"). There is no Unicode normalisation: a composed "é"
and "e" followed by a combining accent are different strings.

The parameters of a user's rule are the user's to choose, so these types are drawn into
generated data only when asked for by id (`--rule-types text:not_contains`).
"""

from __future__ import annotations

import random
from typing import Annotated

from pydantic import StringConstraints

from rolenrules.rules.base import CheckContext, Params, RuleType

#: Sampling pools (used only when a type is asked for): codes and tags in no other pool, with
#: no comma and no first-person word; matched ignoring case, so case rules cannot contradict them.
REQUIRED_POOL = ("REF-2048", "KB-114", "#helpdesk", "[v2.1]")
FORBIDDEN_POOL = ("ZEPHYR-42", "access code 7731", "internal use only", "sk-test-")


class TextParams(Params):
    value: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    case_sensitive: bool = True


def find(params: TextParams, text: str) -> int:
    """Where the value first occurs in `text` (-1: nowhere), as `str.find` (casefolded when not
    case-sensitive; the offset is then in the casefolded text)."""
    if params.case_sensitive:
        return text.find(params.value)
    return text.casefold().find(params.value.casefold())


def quoted(value: str) -> str:
    """The value in quotes that cannot be mistaken for part of it."""
    return f"“{value}”" if '"' in value else f'"{value}"'


class _Text(RuleType[TextParams]):
    category = "content"
    params_model = TextParams
    sampled_by_default = False
    #: Whether the rule wants the value in the reply (contains) or not (not_contains).
    wanted: bool
    pool: tuple[str, ...]

    def _sample(self, rng: random.Random) -> dict:
        return {"value": rng.choice(self.pool), "case_sensitive": False}

    def test(self, params: TextParams, text: str, context: CheckContext) -> bool:
        return (find(params, text) >= 0) == self.wanted

    def explain(self, params: TextParams, response: str, context: CheckContext) -> str | None:
        at = find(params, response)
        return f"found at character {at}" if at >= 0 and not self.wanted else None


class TextContains(_Text):
    id = "text:contains"
    wanted = True
    pool = REQUIRED_POOL
    summary = "Contains the exact string (Python's `in`; case_sensitive=false compares casefolded text)."

    def phrasings(self, params: TextParams) -> list[str]:
        v = quoted(params.value)
        how = " (same capitalisation)" if params.case_sensitive else " (any capitalisation)"
        return [f"Every reply must contain the exact text {v}{how}.",
                f"Always include {v} verbatim in your answer{how}.",
                f"Make sure each response contains {v}{how}."]


class TextNotContains(_Text):
    id = "text:not_contains"
    wanted = False
    pool = FORBIDDEN_POOL
    summary = "Never contains the exact string (Python's `in`; case_sensitive=false compares casefolded text)."

    def phrasings(self, params: TextParams) -> list[str]:
        v = quoted(params.value)
        how = "" if params.case_sensitive else ", in any capitalisation"
        return [f"Never write {v} in a reply{how}.",
                f"The text {v} must never appear in your answers{how}.",
                f"Do not include {v} anywhere in your response{how}."]


TYPES: tuple[RuleType, ...] = (TextContains(), TextNotContains())
