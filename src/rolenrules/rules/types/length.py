"""Length caps and floors a deployed assistant carries: words, sentences, paragraphs, list items.

Counting conventions (shared with the other system-prompt rules):

* words are `\\w+` runs, as IFEval counts them;
* sentences are counted line by line (Punkt within each non-blank line, code blocks removed),
  so a bullet list without full stops still counts one sentence per item;
* paragraphs are blocks separated by blank lines;
* list items are lines starting with a bullet (-, *, +, •) or a number (`1.` / `1)`).

Sampled bounds keep every min below every max of the same quantity, so a sampled set never
asks for more than it allows; `tests/rules/test_registry_sampling.py` checks that.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from pydantic import Field, create_model

from rolenrules.rules import _text
from rolenrules.rules.base import CheckContext, Params, RuleType

_ITEM_RE = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+(?=\S)(?![-*_ \t]+$)", re.MULTILINE)
_HAS_WORD_RE = re.compile(r"\w")


def prose_sentences(text: str) -> list[str]:
    """Sentences line by line (code blocks removed; segments without a word character dropped)."""
    found: list[str] = []
    for line in _text.strip_code_blocks(text).split("\n"):
        if _HAS_WORD_RE.search(line):
            found.extend(s for s in _text.sentences(line) if _HAS_WORD_RE.search(s))
    return found


def count_items(text: str) -> int:
    """Bulleted or numbered list items outside code blocks (horizontal rules are not items)."""
    return len(_ITEM_RE.findall(_text.strip_code_blocks(text)))


def _count_sentences(text: str) -> int:
    return len(prose_sentences(text))


def _count_paragraphs(text: str) -> int:
    return len(_text.paragraphs(text))


class _Bound(RuleType[Any]):
    """A cap (`max`) or floor (`min`) on a counted quantity."""

    category = "length"
    unit: str
    bound: str  # "max" or "min"
    counter: Callable[[str], int]
    choices: tuple[int, ...]
    templates: tuple[str, ...]

    def __init__(self) -> None:
        self.field = f"{self.bound}_{self.unit}"
        self.params_model = create_model(  # type: ignore[misc]
            f"{self.bound.title()}{self.unit.title()}Params", __base__=Params,
            **{self.field: (int, Field(ge=0 if self.bound == "min" else 1))},
        )

    def _sample(self, rng: random.Random) -> dict:
        return {self.field: rng.choice(self.choices)}

    def value(self, params: Params) -> int:
        return getattr(params, self.field)

    def phrasings(self, params: Params) -> list[str]:
        return [template.format(n=self.value(params)) for template in self.templates]

    def measure(self, text: str) -> int:
        return type(self).counter(text)

    def test(self, params: Params, text: str, context: CheckContext) -> bool:
        count, limit = self.measure(text), self.value(params)
        return count <= limit if self.bound == "max" else count >= limit

    def explain(self, params: Params, response: str, context: CheckContext) -> str:
        return f"{self.measure(response)} {self.unit} ({self.bound} {self.value(params)})"


class MaxWords(_Bound):
    id = "length:max_words"
    unit, bound, counter = "words", "max", staticmethod(_text.count_words)
    choices = (60, 80, 100, 120, 150, 200, 250, 300)
    declared_conflicts = ("length_constraints:number_words",)
    summary = "At most N words."
    templates = ("Always answer in {n} words or fewer.", "Keep every reply under {n} words.",
                 "Never write more than {n} words in a response.")


class MinWords(_Bound):
    id = "length:min_words"
    unit, bound, counter = "words", "min", staticmethod(_text.count_words)
    choices = (20, 30, 40, 50)
    declared_conflicts = ("length_constraints:number_words",)
    summary = "At least N words."
    templates = ("Every reply must be at least {n} words long.", "Write no fewer than {n} words in each answer.",
                 "Give substantive answers of {n} words or more.")


class MaxSentences(_Bound):
    id = "length:max_sentences"
    unit, bound, counter = "sentences", "max", staticmethod(_count_sentences)
    choices = tuple(range(4, 13))
    declared_conflicts = ("length_constraints:number_sentences", "length:min_items",
                          "detectable_format:number_bullet_lists")
    summary = "At most N sentences (counted line by line)."
    templates = ("Answer in at most {n} sentences.", "Keep every reply to {n} sentences or fewer.",
                 "Never use more than {n} sentences.")


class MinSentences(_Bound):
    id = "length:min_sentences"
    unit, bound, counter = "sentences", "min", staticmethod(_count_sentences)
    choices = (2, 3)
    declared_conflicts = ("length_constraints:number_sentences",)
    summary = "At least N sentences (counted line by line)."
    templates = ("Always answer in at least {n} full sentences.", "Write {n} or more sentences in every reply.")


class MaxParagraphs(_Bound):
    id = "length:max_paragraphs"
    unit, bound, counter = "paragraphs", "max", staticmethod(_count_paragraphs)
    choices = (3, 4, 5, 6)
    declared_conflicts = ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word",
                          "format:headings_required", "detectable_format:multiple_sections",
                          "combination:two_responses")
    summary = "At most N paragraphs (blocks separated by blank lines)."
    templates = ("Use at most {n} paragraphs per reply.", "Keep each answer to {n} paragraphs or fewer.")


class MinParagraphs(_Bound):
    id = "length:min_paragraphs"
    unit, bound, counter = "paragraphs", "min", staticmethod(_count_paragraphs)
    choices = (2,)
    declared_conflicts = ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word")
    summary = "At least N paragraphs (blocks separated by blank lines)."
    templates = ("Structure every reply in at least {n} paragraphs separated by blank lines.",
                 "Always write {n} or more paragraphs.")


class MaxItems(_Bound):
    id = "length:max_items"
    unit, bound, counter = "items", "max", staticmethod(count_items)
    choices = (3, 4, 5, 6, 7)
    declared_conflicts = ("detectable_format:number_bullet_lists",)
    summary = "At most N bulleted or numbered list items."
    templates = ("Never list more than {n} bullet points.", "Use at most {n} list items in a reply.")


class MinItems(_Bound):
    id = "length:min_items"
    unit, bound, counter = "items", "min", staticmethod(count_items)
    choices = (2, 3)
    declared_conflicts = ("detectable_format:number_bullet_lists",)
    summary = "At least N bulleted or numbered list items."
    templates = ("Always include a list of at least {n} bullet points.",
                 "Every reply must contain a bulleted or numbered list with {n} or more items.")


TYPES: tuple[RuleType, ...] = (
    MaxWords(), MinWords(), MaxSentences(), MinSentences(), MaxParagraphs(), MinParagraphs(), MaxItems(), MinItems(),
)
