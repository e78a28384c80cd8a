"""Regular-expression rules (`regex:`): a pattern is, or is never, found in the reply.

A pattern is Python `re` syntax with `re.search` semantics. It is checked when the rule is
loaded (a bad pattern is an error naming the field) and compiled once per process. Matching
runs on the `regex` engine in its `re`-compatible mode (VERSION0) for the one thing `re` lacks:
a time bound. A pattern that backtracks catastrophically on some reply (`(a|aa)+$` on a long run
of a's) is stopped after `TIMEOUT_S` seconds and the rule is *unscored* with that reason, never
passed. Brace groups that `regex` would read as fuzzy-match constraints (`{e<=1}`) are literal
text to `re`, and `[[:alpha:]]` is a set of characters to `re` but a POSIX class to `regex`, so
both are refused at load: escape the brackets.

The parameters of a user's rule are the user's to choose, so these types are drawn into
generated data only when asked for by id (`--rule-types regex:search`).
"""

from __future__ import annotations

import functools
import random
import re
import warnings
from typing import Annotated

import regex
from pydantic import StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from rolenrules.rules.base import CheckContext, Params, RuleType

#: Seconds one search may take. Ordinary patterns take microseconds on replies of any realistic
#: length, so only a runaway (catastrophically backtracking) search comes near it.
TIMEOUT_S = 0.5

#: Sampling pools (used only when a type is asked for); forbidden patterns match nothing another
#: pool requires.
REQUIRED_POOL = (r"\b[A-Z]{3}-\d{4}\b", r"\bv\d+\.\d+\b", r"\(ref\. \d+\)")
FORBIDDEN_POOL = (r"\b\d{3}-\d{2}-\d{4}\b", r"[\w.+-]+@[\w-]+\.\w+", r"\$\s?\d", r"!{2,}")

# An unescaped brace group holding only fuzzy-constraint characters and at least one of e/i/s/d.
_FUZZY_RE = re.compile(r"(?<!\\)(?:\\\\)*\{[\d\s<=>+,]*[eisd][\deisd\s<=>+,]*\}")


@functools.lru_cache(maxsize=512)
def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a rule's pattern (None: it can). Checked once per pattern."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        re.purge()  # a pattern compiled before would come from re's cache, without its warning
        try:
            re.compile(pattern)
        except re.error as error:
            return f"not a valid regular expression: {error}"
    nested = next((w for w in caught if issubclass(w.category, FutureWarning)), None)
    if nested is not None:
        # re reads "[[:alpha:]]" as a set of characters; the matcher would read a POSIX class.
        return (f"ambiguous: {str(nested.message).lower()} (re reads '[' inside a set as a character; POSIX classes "
                r"such as [[:alpha:]] are not re syntax): escape it as \[")
    if _FUZZY_RE.search(pattern):
        return r"braces like {e<=1} are literal text to re but not to the matcher: escape them as \{ \}"
    try:
        regex.compile(pattern, regex.VERSION0)
    except regex.error as error:
        return f"not supported by the time-bounded matcher: {error}"
    return None


@functools.lru_cache(maxsize=512)
def compiled(pattern: str, flags: int) -> regex.Pattern:
    """The pattern compiled once per process for the time-bounded engine."""
    return regex.compile(pattern, flags | regex.VERSION0)


class RegexParams(Params):
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    ignore_case: bool = False
    multiline: bool = False
    dotall: bool = False

    @field_validator("pattern")
    @classmethod
    def _valid(cls, value: str) -> str:
        problem = pattern_problem(value)
        if problem:
            # PydanticCustomError: shown as written, without pydantic's "Value error, " prefix.
            raise PydanticCustomError("regex", "{problem}", {"problem": problem})
        return value

    @property
    def flags(self) -> int:
        return ((regex.IGNORECASE if self.ignore_case else 0) | (regex.MULTILINE if self.multiline else 0)
                | (regex.DOTALL if self.dotall else 0))


@functools.lru_cache(maxsize=256)
def search(pattern: str, flags: int, text: str) -> regex.Match | None | TimeoutError:
    """`re.search(pattern, text, flags)`, or the TimeoutError when it ran past `TIMEOUT_S`.
    Memoised: `check` and `explain` of one verdict search once."""
    try:
        return compiled(pattern, flags).search(text, timeout=TIMEOUT_S)
    except TimeoutError as error:
        return error


def _flag_note(params: RegexParams) -> str:
    notes = [note for on, note in ((params.ignore_case, "ignoring case"),
                                   (params.multiline, "^ and $ match at every line"),
                                   (params.dotall, ". also matches newlines")) if on]
    return f" ({', '.join(notes)})" if notes else ""


class _Regex(RuleType[RegexParams]):
    category = "content"
    params_model = RegexParams
    sampled_by_default = False
    #: Whether the rule wants a match (search) or none (not_search).
    wanted: bool
    pool: tuple[str, ...]

    def _sample(self, rng: random.Random) -> dict:
        # Ignoring case, so case rules drawn beside it cannot contradict a required pattern.
        return {"pattern": rng.choice(self.pool), "ignore_case": True}

    def test(self, params: RegexParams, text: str, context: CheckContext) -> bool | None:
        found = search(params.pattern, params.flags, text)
        if isinstance(found, TimeoutError):
            return None
        return (found is not None) == self.wanted

    def explain(self, params: RegexParams, response: str, context: CheckContext) -> str | None:
        found = search(params.pattern, params.flags, response)
        if isinstance(found, TimeoutError):
            return f"the search ran past {TIMEOUT_S:g} s (catastrophic backtracking on this reply) and was stopped"
        if found is None:
            return None
        return f"matched {found.group(0)[:80]!r} at character {found.start()}"


class RegexSearch(_Regex):
    id = "regex:search"
    wanted = True
    pool = REQUIRED_POOL
    summary = "The pattern is found somewhere (Python's re.search; runaway searches stopped: unscored)."

    def phrasings(self, params: RegexParams) -> list[str]:
        p, note = params.pattern, _flag_note(params)
        return [f"Every reply must contain text matching the regular expression `{p}`{note}.",
                f"Include a match for the pattern `{p}` in each answer{note}.",
                f"Your response must match the regular expression /{p}/ somewhere{note}."]


class RegexNotSearch(_Regex):
    id = "regex:not_search"
    wanted = False
    pool = FORBIDDEN_POOL
    summary = "The pattern is found nowhere (Python's re.search; runaway searches stopped: unscored)."

    def phrasings(self, params: RegexParams) -> list[str]:
        p, note = params.pattern, _flag_note(params)
        return [f"Never write anything that matches the regular expression `{p}`{note}.",
                f"No part of your reply may match the pattern `{p}`{note}.",
                f"Your answers must never match the regular expression /{p}/{note}."]


TYPES: tuple[RuleType, ...] = (RegexSearch(), RegexNotSearch())
