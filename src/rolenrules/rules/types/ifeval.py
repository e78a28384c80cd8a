"""The 25 IFEval instruction types (Zhou et al., 2023), with the official checking semantics.

Ids and parameter names are IFEval's own (`length_constraints:number_words` with `num_words`
and `relation`), so IFEval's `kwargs` validate directly. The checks follow the published
checker's behaviour exactly, quirks included, because verdicts must agree with it:

* keywords are regular expressions, matched case-insensitively;
* a postscript marker may appear anywhere, not only at a line start;
* a failed language detection counts as followed (IFEval's choice; the system-prompt language
  rule in `types/language.py` reports it as unscored instead). The three types that do this are
  marked `passes_when_undetected` and are never sampled into generated system prompts;
* sentences come from the English Punkt model, words are `\\w+` runs, and the capital-word count
  uses NLTK's Treebank tokens.

The first phrasing of each type is IFEval's own instruction wording; the others say the same as
a standing system-prompt rule.
"""

from __future__ import annotations

import json
import random
import re
import string
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from rolenrules.rules import _text
from rolenrules.rules.base import CheckContext, NoParams, Params, RuleType, relation_holds

Relation = Literal["less than", "at least"]
RELATIONS: tuple[Relation, ...] = ("less than", "at least")
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Count = Annotated[int, Field(ge=0)]

#: IFEval's response languages (ISO 639-1), with their English names.
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi",
    "fr": "French", "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian",
    "bn": "Bengali", "uk": "Ukrainian", "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu",
    "bg": "Bulgarian", "ko": "Korean", "pl": "Polish", "he": "Hebrew", "fa": "Persian",
    "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada", "mr": "Marathi",
    "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}

#: Keywords for sampled keyword rules: everyday nouns, disjoint from every phrase pool in
#: the other `types/` modules so that a sampled set never requires and forbids the same word.
KEYWORD_POOL = (
    "garden", "river", "planet", "window", "market", "bridge", "forest", "engine", "harvest",
    "lantern", "harbor", "compass", "meadow", "village", "journey", "orchestra", "library",
    "mountain", "canvas", "festival", "kitchen", "island", "signal", "workshop", "balance",
    "recipe", "season", "history", "climate", "network", "theory", "pattern", "energy",
    "ocean", "desert", "museum", "battery", "camera", "ticket", "letter",
)
_LETTERS = string.ascii_lowercase
_CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
_END_PHRASES = ("Any other questions?", "Is there anything else I can help with?")
_POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")
_SECTION_SPLITTERS = ("Section", "SECTION")

GROUP_KEYWORDS = "keywords"


def _phrase_relation(relation: str, less: str, least: str) -> str:
    return less if relation == "less than" else least


# --- keywords ----------------------------------------------------------------------------------


class KeywordsParams(Params):
    keywords: tuple[NonEmpty, ...] = Field(min_length=1)


class KeywordExistence(RuleType[KeywordsParams]):
    id = "keywords:existence"
    category = "content"
    english_only = True
    params_model = KeywordsParams
    system_prompt_ok = False
    declared_conflicts = ("keywords:forbidden_words", "keywords:frequency")
    summary = "Every keyword appears (case-insensitive; keywords are regular expressions)."

    def _sample(self, rng: random.Random) -> dict:
        return {"keywords": sorted(rng.sample(KEYWORD_POOL, 2))}

    def phrasings(self, params: KeywordsParams) -> list[str]:
        listed = ", ".join(params.keywords)
        return [
            f"Include keywords {list(params.keywords)} in the response.",
            f"Every reply must mention these words: {listed}.",
            f"Make sure each answer uses the keywords {listed}.",
        ]

    def test(self, params: KeywordsParams, text: str, context: CheckContext) -> bool:
        return all(_text.compile_user_regex(word, re.IGNORECASE).search(text) for word in params.keywords)


class KeywordFrequencyParams(Params):
    keyword: NonEmpty
    frequency: Count
    relation: Relation


class KeywordFrequency(RuleType[KeywordFrequencyParams]):
    id = "keywords:frequency"
    category = "content"
    english_only = True
    params_model = KeywordFrequencyParams
    system_prompt_ok = False
    summary = "A keyword occurs fewer than / at least N times (case-insensitive substring count)."

    def _sample(self, rng: random.Random) -> dict:
        return {"keyword": rng.choice(KEYWORD_POOL), "frequency": rng.randint(1, 3), "relation": rng.choice(RELATIONS)}

    def phrasings(self, params: KeywordFrequencyParams) -> list[str]:
        k, n = params.keyword.strip(), params.frequency
        how = _phrase_relation(params.relation, f"fewer than {n} times", f"at least {n} times")
        return [
            f"In your response, the word {k} should appear {params.relation} {n} times.",
            f"Use the word '{k}' {how} in every reply.",
        ]

    def test(self, params: KeywordFrequencyParams, text: str, context: CheckContext) -> bool:
        found = len(_text.compile_user_regex(params.keyword.strip(), re.IGNORECASE).findall(text))
        return relation_holds(found, params.relation, params.frequency)


class ForbiddenWordsParams(Params):
    forbidden_words: tuple[NonEmpty, ...] = Field(min_length=1)


class ForbiddenWords(RuleType[ForbiddenWordsParams]):
    id = "keywords:forbidden_words"
    category = "content"
    english_only = True
    params_model = ForbiddenWordsParams
    summary = "None of the words appears as a whole word (case-insensitive; words are regular expressions)."

    def _sample(self, rng: random.Random) -> dict:
        return {"forbidden_words": sorted(rng.sample(KEYWORD_POOL, 2))}

    def phrasings(self, params: ForbiddenWordsParams) -> list[str]:
        listed = ", ".join(params.forbidden_words)
        return [
            f"Do not include keywords {sorted(set(params.forbidden_words))} in the response.",
            f"Never use the words {listed}.",
            f"Avoid these words in every reply: {listed}.",
        ]

    def test(self, params: ForbiddenWordsParams, text: str, context: CheckContext) -> bool:
        return not any(_text.compile_user_regex(word, re.IGNORECASE, r"\b", r"\b").search(text)
                       for word in params.forbidden_words)


class LetterFrequencyParams(Params):
    letter: NonEmpty
    let_frequency: Count
    let_relation: Relation

    @model_validator(mode="after")
    def _one_letter(self) -> LetterFrequencyParams:
        if len(self.letter.strip()) != 1:
            raise ValueError("letter must be a single character")
        return self


class LetterFrequency(RuleType[LetterFrequencyParams]):
    id = "keywords:letter_frequency"
    category = "style"
    params_model = LetterFrequencyParams
    system_prompt_ok = False
    summary = "A letter occurs fewer than / at least N times (case-insensitive)."

    def _sample(self, rng: random.Random) -> dict:
        # Only 'at least': "the letter e fewer than 4 times" cannot hold beside most other rules.
        return {"letter": rng.choice(_LETTERS), "let_frequency": rng.randint(1, 10), "let_relation": "at least"}

    def phrasings(self, params: LetterFrequencyParams) -> list[str]:
        letter = params.letter.strip().lower()
        return [
            f"In your response, the letter {letter} should appear {params.let_relation} {params.let_frequency} times.",
            f"Use the letter '{letter}' {params.let_relation} {params.let_frequency} times in each reply.",
        ]

    def test(self, params: LetterFrequencyParams, text: str, context: CheckContext) -> bool:
        found = text.lower().count(params.letter.strip().lower())
        return relation_holds(found, params.let_relation, params.let_frequency)


# --- language ----------------------------------------------------------------------------------


class LanguageParams(Params):
    language: NonEmpty


class ResponseLanguage(RuleType[LanguageParams]):
    id = "language:response_language"
    category = "language"
    params_model = LanguageParams
    sets_language = True
    passes_when_undetected = True
    system_prompt_ok = False
    summary = "The whole response is in the given language (langdetect, seeded; undetectable counts as followed)."

    def _sample(self, rng: random.Random) -> dict:
        return {"language": rng.choice(sorted(LANGUAGE_NAMES))}

    def phrasings(self, params: LanguageParams) -> list[str]:
        name = LANGUAGE_NAMES.get(params.language, params.language)
        return [
            f"Your ENTIRE response should be in {name} language, no other language is allowed.",
            f"Always reply in {name}, whatever language the user writes in.",
            f"Write every answer entirely in {name}.",
        ]

    def test(self, params: LanguageParams, text: str, context: CheckContext) -> bool:
        detected = _text.detect_language(text)
        return True if detected is None else detected == params.language


# --- length constraints ------------------------------------------------------------------------


class SentencesParams(Params):
    num_sentences: Count
    relation: Relation


class NumberSentences(RuleType[SentencesParams]):
    id = "length_constraints:number_sentences"
    category = "length"
    params_model = SentencesParams
    declared_conflicts = ("length:max_words", "length:min_words", "length_constraints:number_words")
    summary = "Fewer than / at least N sentences (English Punkt)."

    def _sample(self, rng: random.Random) -> dict:
        relation = rng.choice(RELATIONS)
        # "fewer than 1 sentence" cannot be followed, so 'less than' starts at 2.
        return {"num_sentences": rng.randint(2 if relation == "less than" else 1, 20), "relation": relation}

    def phrasings(self, params: SentencesParams) -> list[str]:
        n = params.num_sentences
        how = _phrase_relation(params.relation, f"fewer than {n} sentences", f"at least {n} sentences")
        return [
            f"Your response should contain {params.relation} {n} sentences.",
            f"Keep every reply to {how}." if params.relation == "less than" else f"Write {how} in every reply.",
        ]

    def test(self, params: SentencesParams, text: str, context: CheckContext) -> bool:
        return relation_holds(_text.count_sentences(text), params.relation, params.num_sentences)

    def explain(self, params: SentencesParams, response: str, context: CheckContext) -> str:
        return f"{_text.count_sentences(response)} sentences"


class ParagraphsParams(Params):
    num_paragraphs: Count


_DIVIDER_SPLIT_RE = re.compile(r"\s?\*\*\*\s?")


class NumberParagraphs(RuleType[ParagraphsParams]):
    id = "length_constraints:number_paragraphs"
    category = "length"
    params_model = ParagraphsParams
    declared_conflicts = ("length_constraints:nth_paragraph_first_word",)
    summary = "Exactly N paragraphs separated by the markdown divider ***."

    def _sample(self, rng: random.Random) -> dict:
        return {"num_paragraphs": rng.randint(1, 5)}

    def phrasings(self, params: ParagraphsParams) -> list[str]:
        n = params.num_paragraphs
        return [
            f"There should be {n} paragraphs. Paragraphs are separated with the markdown divider: ***",
            f"Structure every reply as exactly {n} paragraphs, separated by a line containing only ***.",
        ]

    def test(self, params: ParagraphsParams, text: str, context: CheckContext) -> bool:
        parts = _DIVIDER_SPLIT_RE.split(text)
        count = len(parts)
        for index, part in enumerate(parts):
            if not part.strip():
                if index in (0, len(parts) - 1):
                    count -= 1
                else:
                    return False
        return count == params.num_paragraphs


class WordsParams(Params):
    num_words: Count
    relation: Relation


class NumberWords(RuleType[WordsParams]):
    id = "length_constraints:number_words"
    category = "length"
    params_model = WordsParams
    declared_conflicts = ("length:max_sentences", "length:min_sentences", "style:max_sentence_words")
    summary = "Fewer than / at least N words (\\w+ runs)."

    def _sample(self, rng: random.Random) -> dict:
        return {"num_words": rng.randint(100, 500), "relation": rng.choice(RELATIONS)}

    def phrasings(self, params: WordsParams) -> list[str]:
        n = params.num_words
        if params.relation == "less than":
            extra = [f"Always answer in fewer than {n} words.", f"Keep every reply shorter than {n} words."]
        else:
            extra = [f"Always answer in at least {n} words.", f"Every reply must be {n} words or longer."]
        return [f"Answer with {params.relation} {n} words.", *extra]

    def test(self, params: WordsParams, text: str, context: CheckContext) -> bool:
        return relation_holds(_text.count_words(text), params.relation, params.num_words)

    def explain(self, params: WordsParams, response: str, context: CheckContext) -> str:
        return f"{_text.count_words(response)} words"


class NthParagraphParams(Params):
    num_paragraphs: Annotated[int, Field(ge=1)]
    nth_paragraph: Annotated[int, Field(ge=1)]
    first_word: NonEmpty

    @model_validator(mode="after")
    def _in_range(self) -> NthParagraphParams:
        if self.nth_paragraph > self.num_paragraphs:
            raise ValueError("nth_paragraph must not exceed num_paragraphs")
        return self


_FIRST_WORD_STOP = frozenset(".,?!'\"")


class NthParagraphFirstWord(RuleType[NthParagraphParams]):
    id = "length_constraints:nth_paragraph_first_word"
    category = "format"
    params_model = NthParagraphParams
    system_prompt_ok = False
    declared_conflicts = ("keywords:forbidden_words", "keywords:frequency")
    summary = "Exactly N paragraphs (split on blank lines) and paragraph i starts with a given word."

    def _sample(self, rng: random.Random) -> dict:
        num = rng.randint(1, 5)
        return {"num_paragraphs": num, "nth_paragraph": rng.randint(1, num), "first_word": rng.choice(KEYWORD_POOL)}

    def phrasings(self, params: NthParagraphParams) -> list[str]:
        p = params
        return [
            f"There should be {p.num_paragraphs} paragraphs. Paragraphs and only paragraphs are separated with each "
            f"other by two new lines as if it was '\\n\\n' in python. Paragraph {p.nth_paragraph} must start with "
            f"word {p.first_word.lower()}.",
            f"Write exactly {p.num_paragraphs} paragraphs separated by blank lines; paragraph {p.nth_paragraph} "
            f"must begin with the word '{p.first_word.lower()}'.",
        ]

    def test(self, params: NthParagraphParams, text: str, context: CheckContext) -> bool:
        parts = text.split("\n\n")
        count = sum(1 for part in parts if part.strip())
        if params.nth_paragraph > count:
            return False
        paragraph = parts[params.nth_paragraph - 1].strip()
        if not paragraph:
            return False
        word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
        first = []
        for char in word:
            if char in _FIRST_WORD_STOP:
                break
            first.append(char.lower())
        return count == params.num_paragraphs and "".join(first) == params.first_word.lower()


# --- detectable content ------------------------------------------------------------------------


class PlaceholdersParams(Params):
    num_placeholders: Count


_PLACEHOLDER_RE = re.compile(r"\[.*?\]")


class NumberPlaceholders(RuleType[PlaceholdersParams]):
    id = "detectable_content:number_placeholders"
    category = "format"
    params_model = PlaceholdersParams
    system_prompt_ok = False
    summary = "At least N placeholders in square brackets, like [address]."

    def _sample(self, rng: random.Random) -> dict:
        return {"num_placeholders": rng.randint(1, 4)}

    def phrasings(self, params: PlaceholdersParams) -> list[str]:
        n = params.num_placeholders
        return [
            f"The response must contain at least {n} placeholders represented by square brackets, such as [address].",
            f"Include at least {n} fill-in placeholders in square brackets, like [name], in every reply.",
        ]

    def test(self, params: PlaceholdersParams, text: str, context: CheckContext) -> bool:
        return len(_PLACEHOLDER_RE.findall(text)) >= params.num_placeholders


class PostscriptParams(Params):
    postscript_marker: NonEmpty


_PS_RE = re.compile(r"\s*p\.\s?s\..*$", re.MULTILINE)
_PPS_RE = re.compile(r"\s*p\.\s?p\.\s?s.*$", re.MULTILINE)


class Postscript(RuleType[PostscriptParams]):
    id = "detectable_content:postscript"
    category = "format"
    english_only = True
    params_model = PostscriptParams
    declared_conflicts = ("startend:end_checker",)
    summary = "A postscript starting with the marker (P.S., P.P.S, ...) appears (case-insensitive)."

    def _sample(self, rng: random.Random) -> dict:
        return {"postscript_marker": rng.choice(_POSTSCRIPT_MARKERS)}

    def phrasings(self, params: PostscriptParams) -> list[str]:
        marker = params.postscript_marker.strip()
        return [
            f"At the end of your response, please explicitly add a postscript starting with {marker}",
            f"End every reply with a short postscript that starts with '{marker}'.",
        ]

    def test(self, params: PostscriptParams, text: str, context: CheckContext) -> bool:
        marker = params.postscript_marker.strip()
        lowered = text.lower()
        if marker == "P.P.S":
            pattern = _PPS_RE
        elif marker == "P.S.":
            pattern = _PS_RE
        else:
            pattern = _text.compile_user_regex(marker.lower(), re.MULTILINE, r"\s*", r".*$")
        return pattern.search(lowered) is not None


# --- detectable format -------------------------------------------------------------------------


class BulletsParams(Params):
    num_bullets: Count


_STAR_BULLET_RE = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_DASH_BULLET_RE = re.compile(r"^\s*-.*$", re.MULTILINE)


class NumberBulletLists(RuleType[BulletsParams]):
    id = "detectable_format:number_bullet_lists"
    category = "format"
    params_model = BulletsParams
    summary = "Exactly N markdown bullet points (lines starting with * or -)."

    def _sample(self, rng: random.Random) -> dict:
        return {"num_bullets": rng.randint(1, 5)}

    def phrasings(self, params: BulletsParams) -> list[str]:
        n = params.num_bullets
        return [
            f"Your answer must contain exactly {n} bullet points. Use the markdown bullet points such as:\n"
            "* This is point 1. \n* This is point 2",
            f"Every reply must contain exactly {n} markdown bullet points (lines starting with '* ').",
        ]

    def test(self, params: BulletsParams, text: str, context: CheckContext) -> bool:
        count = len(_STAR_BULLET_RE.findall(text)) + len(_DASH_BULLET_RE.findall(text))
        return count == params.num_bullets


class ConstrainedResponse(RuleType[NoParams]):
    id = "detectable_format:constrained_response"
    category = "format"
    english_only = True
    conflicts_with_all = True
    system_prompt_ok = False
    summary = "Contains one of 'My answer is yes.', 'My answer is no.', 'My answer is maybe.'."

    def phrasings(self, params: NoParams) -> list[str]:
        return [
            f"Answer with one of the following options: {_CONSTRAINED_OPTIONS}",
            "Reply only with 'My answer is yes.', 'My answer is no.' or 'My answer is maybe.'.",
        ]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        text = text.strip()
        return any(option in text for option in _CONSTRAINED_OPTIONS)


class HighlightsParams(Params):
    num_highlights: Count


_HIGHLIGHT_RE = re.compile(r"\*[^\n\*]*\*")
_DOUBLE_HIGHLIGHT_RE = re.compile(r"\*\*[^\n\*]*\*\*")


class NumberHighlightedSections(RuleType[HighlightsParams]):
    id = "detectable_format:number_highlighted_sections"
    category = "format"
    params_model = HighlightsParams
    summary = "At least N sections highlighted with markdown, *like this*."

    def _sample(self, rng: random.Random) -> dict:
        return {"num_highlights": rng.randint(1, 4)}

    def phrasings(self, params: HighlightsParams) -> list[str]:
        n = params.num_highlights
        return [
            f"Highlight at least {n} sections in your answer with markdown, i.e. *highlighted section*.",
            f"In every reply, highlight at least {n} key parts with markdown asterisks, *like this*.",
        ]

    def test(self, params: HighlightsParams, text: str, context: CheckContext) -> bool:
        count = sum(1 for found in _HIGHLIGHT_RE.findall(text) if found.strip("*").strip())
        count += sum(1 for found in _DOUBLE_HIGHLIGHT_RE.findall(text)
                     if found.removeprefix("**").removesuffix("**").strip())
        return count >= params.num_highlights


class SectionsParams(Params):
    section_spliter: NonEmpty
    num_sections: Count


class MultipleSections(RuleType[SectionsParams]):
    id = "detectable_format:multiple_sections"
    category = "format"
    params_model = SectionsParams
    summary = "At least N sections, each starting with '<splitter> <number>' (e.g. SECTION 1)."

    def _sample(self, rng: random.Random) -> dict:
        return {"section_spliter": rng.choice(_SECTION_SPLITTERS), "num_sections": rng.randint(1, 5)}

    def phrasings(self, params: SectionsParams) -> list[str]:
        s, n = params.section_spliter.strip(), params.num_sections
        return [
            f"Your response must have {n} sections. Mark the beginning of each section with {s} X, such as:\n"
            f"{s} 1\n[content of section 1]\n{s} 2\n[content of section 2]",
            f"Organise every reply into {n} sections, each introduced by '{s} 1', '{s} 2', and so on.",
        ]

    def test(self, params: SectionsParams, text: str, context: CheckContext) -> bool:
        splitter = _text.compile_user_regex(params.section_spliter.strip(), 0, r"\s?", r"\s?\d+\s?")
        return len(splitter.split(text)) - 1 >= params.num_sections


class JsonFormat(RuleType[NoParams]):
    id = "detectable_format:json_format"
    category = "format"
    summary = "The whole response is valid JSON (optionally inside ``` fences)."

    def phrasings(self, params: NoParams) -> list[str]:
        return [
            "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
            "Always answer with valid JSON only.",
            "Format every reply as a single JSON document and nothing else.",
        ]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        body = (text.strip().removeprefix("```json").removeprefix("```Json").removeprefix("```JSON")
                .removeprefix("```").removesuffix("```").strip())
        try:
            json.loads(body)
        except ValueError:
            return False
        return True


_TITLE_RE = re.compile(r"<<[^\n]+>>")


class Title(RuleType[NoParams]):
    id = "detectable_format:title"
    category = "format"
    summary = "Contains a title in double angular brackets, like <<poem of joy>>."

    def phrasings(self, params: NoParams) -> list[str]:
        return [
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
            "Give every reply a title wrapped in double angle brackets, for example <<My Title>>.",
        ]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return any(found.lstrip("<").rstrip(">").strip() for found in _TITLE_RE.findall(text))


# --- combination -------------------------------------------------------------------------------


class TwoResponses(RuleType[NoParams]):
    id = "combination:two_responses"
    category = "format"
    system_prompt_ok = False
    declared_conflicts = ("length_constraints:number_paragraphs", "startend:quotation", "detectable_format:json_format")
    summary = "Two different responses separated by ******."

    def phrasings(self, params: NoParams) -> list[str]:
        return [
            "Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******.",
            "Always offer two different answers, separated by a line of six asterisks (******).",
        ]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        parts = text.split("******")
        kept = []
        for index, part in enumerate(parts):
            if part.strip():
                kept.append(part)
            elif index not in (0, len(parts) - 1):
                return False
        return len(kept) == 2 and kept[0].strip() != kept[1].strip()


class RepeatPromptParams(Params):
    prompt_to_repeat: NonEmpty


class RepeatPrompt(RuleType[RepeatPromptParams]):
    id = "combination:repeat_prompt"
    category = "format"
    english_only = True
    params_model = RepeatPromptParams
    sampleable = False
    system_prompt_ok = False
    conflicts_with_all = True
    example_params = {"prompt_to_repeat": "Write a haiku about the sea."}
    summary = "Starts by repeating the request word for word (case-insensitive)."

    def phrasings(self, params: RepeatPromptParams) -> list[str]:
        return [
            "First repeat the request word for word without change, then give your answer (1. do not say any words "
            "or characters before repeating the request; 2. the request you need to repeat does not include this "
            "sentence)",
            "Begin by restating the user's request verbatim, then answer it.",
        ]

    def test(self, params: RepeatPromptParams, text: str, context: CheckContext) -> bool:
        return text.strip().lower().startswith(params.prompt_to_repeat.strip().lower())


# --- start / end -------------------------------------------------------------------------------


class EndPhraseParams(Params):
    end_phrase: NonEmpty


class EndChecker(RuleType[EndPhraseParams]):
    id = "startend:end_checker"
    category = "format"
    english_only = True
    params_model = EndPhraseParams
    summary = "Ends with the exact phrase (case-insensitive; surrounding quotes ignored)."

    def _sample(self, rng: random.Random) -> dict:
        return {"end_phrase": rng.choice(_END_PHRASES)}

    def phrasings(self, params: EndPhraseParams) -> list[str]:
        phrase = params.end_phrase.strip()
        return [
            f"Finish your response with this exact phrase {phrase}. No other words should follow this phrase.",
            f"End every reply with the exact phrase \"{phrase}\" and nothing after it.",
        ]

    def test(self, params: EndPhraseParams, text: str, context: CheckContext) -> bool:
        return text.strip().strip('"').lower().endswith(params.end_phrase.strip().lower())


class Quotation(RuleType[NoParams]):
    id = "startend:quotation"
    category = "format"
    declared_conflicts = ("detectable_format:json_format",)
    summary = "The whole response is wrapped in double quotation marks."

    def phrasings(self, params: NoParams) -> list[str]:
        return [
            "Wrap your entire response with double quotation marks.",
            "Always put your entire reply inside double quotation marks.",
        ]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        text = text.strip()
        return len(text) > 1 and text[0] == '"' and text[-1] == '"'


# --- change case / punctuation -----------------------------------------------------------------


class CapitalFrequencyParams(Params):
    capital_frequency: Count
    capital_relation: Relation


class CapitalWordFrequency(RuleType[CapitalFrequencyParams]):
    id = "change_case:capital_word_frequency"
    category = "style"
    params_model = CapitalFrequencyParams
    system_prompt_ok = False
    declared_conflicts = ("change_case:english_lowercase", "change_case:english_capital", "style:all_uppercase")
    summary = "Fewer than / at least N all-capital words (NLTK word tokens)."

    def _sample(self, rng: random.Random) -> dict:
        return {"capital_frequency": rng.randint(1, 20), "capital_relation": rng.choice(RELATIONS)}

    def phrasings(self, params: CapitalFrequencyParams) -> list[str]:
        n = params.capital_frequency
        return [
            f"In your response, words with all capital letters should appear {params.capital_relation} {n} times.",
            f"Use words written in ALL CAPITALS {params.capital_relation} {n} times per reply.",
        ]

    def test(self, params: CapitalFrequencyParams, text: str, context: CheckContext) -> bool:
        return relation_holds(_text.count_upper_tokens(text), params.capital_relation, params.capital_frequency)


class EnglishCapital(RuleType[NoParams]):
    id = "change_case:english_capital"
    category = "style"
    english_only = True
    passes_when_undetected = True
    system_prompt_ok = False
    declared_conflicts = ("change_case:english_lowercase",)
    summary = "English, all capital letters (undetectable language counts as followed)."

    def phrasings(self, params: NoParams) -> list[str]:
        return [
            "Your entire response should be in English, and in all capital letters.",
            "Always reply in English using only CAPITAL LETTERS.",
        ]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        if not text.isupper():
            return False
        detected = _text.detect_language(text)
        return True if detected is None else detected == "en"


class EnglishLowercase(RuleType[NoParams]):
    id = "change_case:english_lowercase"
    category = "style"
    english_only = True
    passes_when_undetected = True
    system_prompt_ok = False
    summary = "English, all lowercase letters (undetectable language counts as followed)."

    def phrasings(self, params: NoParams) -> list[str]:
        return [
            "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
            "Always reply in English using only lowercase letters; never use capitals.",
        ]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        if not text.islower():
            return False
        detected = _text.detect_language(text)
        return True if detected is None else detected == "en"


class NoComma(RuleType[NoParams]):
    id = "punctuation:no_comma"
    category = "style"
    declared_conflicts = ("detectable_format:json_format",)
    summary = "No commas at all."

    def phrasings(self, params: NoParams) -> list[str]:
        return [
            "In your entire response, refrain from the use of any commas.",
            "Never use commas in your replies.",
            "Write without a single comma.",
        ]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return "," not in text


TYPES: tuple[RuleType, ...] = (
    KeywordExistence(), KeywordFrequency(), ForbiddenWords(), LetterFrequency(),
    ResponseLanguage(),
    NumberSentences(), NumberParagraphs(), NumberWords(), NthParagraphFirstWord(),
    NumberPlaceholders(), Postscript(),
    NumberBulletLists(), ConstrainedResponse(), NumberHighlightedSections(), MultipleSections(), JsonFormat(), Title(),
    TwoResponses(), RepeatPrompt(),
    EndChecker(), Quotation(),
    CapitalWordFrequency(), EnglishCapital(), EnglishLowercase(),
    NoComma(),
)

#: The 25 IFEval instruction ids.
IFEVAL_IDS: frozenset[str] = frozenset(t.id for t in TYPES)
