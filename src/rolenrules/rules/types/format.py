"""Output-format rules: openings and sign-offs, list-only replies, JSON with keys, headings, code
blocks, ending with a question.

Phrase rules compare casefolded words and ignore punctuation and markdown around them, so
"hello there!" satisfies "Start with 'Hello there.'" and still does under an all-lowercase rule.
"""

from __future__ import annotations

import json
import random
import re
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from rolenrules.rules import _text
from rolenrules.rules.base import CheckContext, NoParams, Params, RuleType

Phrase = Annotated[str, StringConstraints(min_length=1, max_length=300)]

#: Pools for sampled phrases: no first-person words, nothing from the forbidden-word pool.
OPENINGS = ("Hello!", "Greetings.", "Thanks for reaching out.", "Good question.", "Happy to help.", "Sure thing.")
SIGN_OFFS = ("Best regards.", "Take care!", "Hope this helps!", "Cheers.", "Have a great day!", "All the best.")
JSON_KEY_SETS = (("answer",), ("answer", "confidence"), ("summary", "details"), ("title", "body"),
                 ("response", "sources"))

_LIST_FORMATS = ("format:bullets_only", "format:numbered_list")
#: Rules that need prose, a particular start or end, or other text around the content.
_NOT_WITH_JSON = (
    "format:opening", "format:sign_off", "format:end_with_question", "format:bullets_only", "format:numbered_list",
    "format:headings_required", "length:min_paragraphs", "length:min_items", "length:min_sentences",
    "style:all_uppercase", "change_case:english_capital", "detectable_format:json_format", "detectable_format:title",
    "detectable_format:multiple_sections", "detectable_format:number_bullet_lists", "detectable_content:postscript",
    "length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word", "startend:end_checker",
    "startend:quotation", "combination:two_responses", "punctuation:no_comma", "content:required_disclaimer",
    "language:reply_language", "language:response_language", "style:max_sentence_words",
)

_HEADING_RE = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_FENCE_LINE_RE = re.compile(r"^[ \t]*(?:```|~~~)", re.MULTILINE)
_BULLET_LINE_RE = re.compile(r"[ \t]*[-*+•][ \t]+\S")
_NUMBERED_LINE_RE = re.compile(r"([ \t]*)(\d{1,3})[.)][ \t]+\S")
_TRAILING_CLOSERS = " \t\r\n\"'”’»)]*_>`"


class PhraseParams(Params):
    phrase: Phrase

    @field_validator("phrase")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not _text.normalise(value):
            raise ValueError("the phrase needs at least one letter or digit")
        return value


class Opening(RuleType[PhraseParams]):
    id = "format:opening"
    category = "format"
    english_only = True
    params_model = PhraseParams
    declared_conflicts = ("combination:repeat_prompt", "detectable_format:constrained_response")
    summary = "Starts with the phrase (case, punctuation and markdown ignored)."

    def _sample(self, rng: random.Random) -> dict:
        return {"phrase": rng.choice(OPENINGS)}

    def phrasings(self, params: PhraseParams) -> list[str]:
        p = params.phrase
        return [f'Always begin your reply with "{p}"', f'Start every response with the words "{p}"',
                f'Open each answer with "{p}"']

    def test(self, params: PhraseParams, text: str, context: CheckContext) -> bool:
        return (_text.normalise(text) + " ").startswith(_text.normalise(params.phrase) + " ")


class SignOff(RuleType[PhraseParams]):
    id = "format:sign_off"
    category = "format"
    english_only = True
    params_model = PhraseParams
    declared_conflicts = ("startend:end_checker", "detectable_content:postscript", "format:end_with_question")
    summary = "Ends with the phrase (case, punctuation and markdown ignored)."

    def _sample(self, rng: random.Random) -> dict:
        return {"phrase": rng.choice(SIGN_OFFS)}

    def phrasings(self, params: PhraseParams) -> list[str]:
        p = params.phrase
        return [f'Always end your reply with "{p}"', f'Sign off every response with "{p}"',
                f'Close each answer with the words "{p}"']

    def test(self, params: PhraseParams, text: str, context: CheckContext) -> bool:
        return (" " + _text.normalise(text)).endswith(" " + _text.normalise(params.phrase))


def _content_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


class BulletsOnly(RuleType[NoParams]):
    id = "format:bullets_only"
    category = "format"
    declared_conflicts = ("format:numbered_list", "format:opening", "format:sign_off", "format:headings_required",
                          "detectable_format:title", "detectable_content:postscript", "startend:quotation",
                          "combination:two_responses", "detectable_format:multiple_sections",
                          "length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word",
                          "detectable_format:number_bullet_lists", "length:min_paragraphs",
                          "content:required_disclaimer", "startend:end_checker", "length:max_sentences")
    summary = "Every non-blank line is a bullet item (-, *, + or •)."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Answer only with bullet points; no other text.", "Format every reply entirely as a bulleted list.",
                "Respond using bullet points only, one idea per bullet."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        lines = _content_lines(text)
        return bool(lines) and all(_BULLET_LINE_RE.match(line) for line in lines)


class NumberedList(RuleType[NoParams]):
    id = "format:numbered_list"
    category = "format"
    declared_conflicts = BulletsOnly.declared_conflicts[1:]
    summary = "Every non-blank line is a numbered item; top-level numbers run 1, 2, 3, ..."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Answer only with a numbered list; no other text.", "Format every reply as a numbered list (1., 2., 3., ...).",
                "Respond with numbered steps only."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        lines = _content_lines(text)
        if not lines:
            return False
        expected = 1
        for line in lines:
            match = _NUMBERED_LINE_RE.match(line)
            if not match:
                return False
            if not match.group(1):  # indented items are sub-steps and restart their own count
                if int(match.group(2)) != expected:
                    return False
                expected += 1
        return expected > 1


class JsonKeysParams(Params):
    required_keys: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = Field(min_length=1)


def _json_body(text: str) -> str:
    body = text.strip()
    if body.startswith(("```", "~~~")):
        fence = body[:3]
        first_newline = body.find("\n")
        if first_newline == -1 or not body.endswith(fence):
            return body
        body = body[first_newline + 1:-3]
    return body.strip()


class JsonObject(RuleType[JsonKeysParams]):
    id = "format:json_object"
    category = "format"
    params_model = JsonKeysParams
    declared_conflicts = _NOT_WITH_JSON
    summary = "The reply is one JSON object (optionally fenced) with the required keys."

    def _sample(self, rng: random.Random) -> dict:
        return {"required_keys": list(rng.choice(JSON_KEY_SETS))}

    def phrasings(self, params: JsonKeysParams) -> list[str]:
        keys = ", ".join(f'"{key}"' for key in params.required_keys)
        return [f"Reply only with a JSON object that has the keys {keys}.",
                f"Always answer in JSON: a single object containing {keys}.",
                f"Output nothing but a JSON object with these keys: {keys}."]

    def test(self, params: JsonKeysParams, text: str, context: CheckContext) -> bool:
        try:
            value = json.loads(_json_body(text))
        except ValueError:
            return False
        return isinstance(value, dict) and all(key in value for key in params.required_keys)


class HeadingsParams(Params):
    min_headings: Annotated[int, Field(ge=1)]


class HeadingsRequired(RuleType[HeadingsParams]):
    id = "format:headings_required"
    category = "format"
    params_model = HeadingsParams
    declared_conflicts = ("format:no_headings",)
    summary = "At least N markdown headings (# ...) outside code blocks."

    def _sample(self, rng: random.Random) -> dict:
        return {"min_headings": rng.randint(1, 3)}

    def phrasings(self, params: HeadingsParams) -> list[str]:
        n = params.min_headings
        plural = "headings" if n > 1 else "heading"
        return [f"Organise every reply under at least {n} markdown {plural} (lines starting with #).",
                f"Use at least {n} markdown section {plural} in each answer."]

    def count(self, text: str) -> int:
        return len(_HEADING_RE.findall(_text.strip_code_blocks(text)))

    def test(self, params: HeadingsParams, text: str, context: CheckContext) -> bool:
        return self.count(text) >= params.min_headings


class NoHeadings(RuleType[NoParams]):
    id = "format:no_headings"
    category = "format"
    summary = "No markdown headings (# ...) outside code blocks."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Do not use markdown headings.", "Never add section titles or # headings to your replies.",
                "Write plain paragraphs without headings."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return not _HEADING_RE.search(_text.strip_code_blocks(text))


class NoCodeBlocks(RuleType[NoParams]):
    id = "format:no_code_blocks"
    category = "format"
    summary = "No fenced code blocks (``` or ~~~)."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Never include code blocks in your replies.", "Do not use fenced code blocks (```).",
                "Explain in prose; no code blocks."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return not _FENCE_LINE_RE.search(text)


class EndWithQuestion(RuleType[NoParams]):
    id = "format:end_with_question"
    category = "style"
    declared_conflicts = ("startend:end_checker", "detectable_content:postscript")
    summary = "The last sentence is a question (ends with '?', closing quotes/markdown ignored)."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Always end your reply with a question to the user.",
                "Finish every response by asking the user a follow-up question.",
                "Close each answer with a question."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return text.rstrip(_TRAILING_CLOSERS).endswith("?")


TYPES: tuple[RuleType, ...] = (
    Opening(), SignOff(), BulletsOnly(), NumberedList(), JsonObject(), HeadingsRequired(), NoHeadings(),
    NoCodeBlocks(), EndWithQuestion(),
)
