"""Style rules (`style:`): letter case, emojis, first person, sentence length, reading level."""

from __future__ import annotations

import random
import re
from typing import Annotated

from pydantic import Field

from rolenrules.rules import _text
from rolenrules.rules.base import CheckContext, NoParams, Params, RuleType
from rolenrules.rules.types.length import prose_sentences


class AllLowercase(RuleType[NoParams]):
    id = "style:all_lowercase"
    category = "style"
    declared_conflicts = ("style:all_uppercase", "change_case:english_capital", "change_case:capital_word_frequency",
                          "change_case:english_lowercase")
    summary = "No uppercase letters anywhere."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Write entirely in lowercase letters; never use capitals.", "Use only lowercase letters in every reply.",
                "no capital letters, ever: reply in all lowercase."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return not any(char.isupper() for char in text)


class AllUppercase(RuleType[NoParams]):
    id = "style:all_uppercase"
    category = "style"
    english_only = True
    declared_conflicts = ("change_case:english_lowercase", "change_case:english_capital")
    summary = "No lowercase letters anywhere."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["WRITE EVERY REPLY ENTIRELY IN CAPITAL LETTERS.", "Use only uppercase letters in your answers.",
                "Always respond in all caps."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return not any(char.islower() for char in text)


# Emoji: the pictographic planes, the characters of the Misc Symbols and Dingbats blocks that
# Unicode marks as emoji, a few more, and anything followed by the emoji presentation selector.
# Typographic marks (✓ ★ → © ™) are allowed.
_EMOJI_RE = re.compile(
    "[\U0001F000-\U0001FAFF"
    "\u2600-\u2604\u260E\u2611\u2614\u2615\u2618\u261D\u2620\u2622\u2623\u2626\u262A\u262E\u262F"
    "\u2638-\u263A\u2640\u2642\u2648-\u2653\u265F\u2660\u2663\u2665\u2666\u2668\u267B\u267E\u267F"
    "\u2692-\u2697\u2699\u269B\u269C\u26A0\u26A1\u26A7\u26AA\u26AB\u26B0\u26B1\u26BD\u26BE\u26C4"
    "\u26C5\u26C8\u26CE\u26CF\u26D1\u26D3\u26D4\u26E9\u26EA\u26F0-\u26F5\u26F7-\u26FA\u26FD"
    "\u2702\u2705\u2708-\u270D\u270F\u2712\u2714\u2716\u271D\u2721\u2728\u2733\u2734\u2744\u2747"
    "\u274C\u274E\u2753-\u2755\u2757\u2763\u2764\u2795-\u2797\u27A1\u27B0\u27BF"
    "\u231A\u231B\u2328\u23CF\u23E9-\u23F3\u23F8-\u23FA\u2B05-\u2B07\u2B1B\u2B1C\u2B50\u2B55"
    "\u3030\u303D\u3297\u3299]|.\uFE0F"
)


class NoEmojis(RuleType[NoParams]):
    id = "style:no_emojis"
    category = "style"
    summary = "No emoji (pictographs, emoticons, flags)."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Never use emojis.", "Do not include any emoji in your replies.", "Keep replies free of emojis."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return not _EMOJI_RE.search(text)


# "I" (and its contractions) only as a capital on its own; other forms in any case except "US".
_FIRST_PERSON_I_RE = re.compile(r"(?<![\w'’])I(?:['’](?:m|ve|d|ll))?(?![\w'’])")
_FIRST_PERSON_RE = re.compile(r"\b(?:me|my|mine|myself|we|us|our|ours|ourselves)\b", re.IGNORECASE)


def first_person_words(text: str) -> list[str]:
    prose = _text.strip_code_blocks(text)
    found = _FIRST_PERSON_I_RE.findall(prose)
    found += [word for word in _FIRST_PERSON_RE.findall(prose) if word != "US"]
    return found


class NoFirstPerson(RuleType[NoParams]):
    id = "style:no_first_person"
    category = "style"
    english_only = True
    declared_conflicts = ("combination:repeat_prompt", "detectable_format:constrained_response",
                          "persona:self_name")
    summary = "No first-person pronouns (I, me, my, we, us, our, ...; 'US' allowed), code blocks ignored."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Never refer to yourself: do not use first-person words such as I, me, my, we or our.",
                "Write impersonally, without first-person pronouns.",
                "Do not use the words I, me, my, we, us or our."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return not first_person_words(text)

    def explain(self, params: NoParams, response: str, context: CheckContext) -> str | None:
        found = first_person_words(response)
        return f"first person: {', '.join(sorted(set(found))[:5])}" if found else None


class SentenceWordsParams(Params):
    max_words: Annotated[int, Field(ge=1)]


class MaxSentenceWords(RuleType[SentenceWordsParams]):
    id = "style:max_sentence_words"
    category = "style"
    params_model = SentenceWordsParams
    summary = "No sentence longer than N words (sentences counted line by line)."

    def _sample(self, rng: random.Random) -> dict:
        return {"max_words": rng.choice((15, 20, 25, 30))}

    def phrasings(self, params: SentenceWordsParams) -> list[str]:
        n = params.max_words
        return [f"Keep every sentence to {n} words or fewer.", f"Write short sentences: {n} words at most each.",
                f"No sentence may exceed {n} words."]

    def longest(self, text: str) -> int:
        return max((_text.count_words(s) for s in prose_sentences(text)), default=0)

    def test(self, params: SentenceWordsParams, text: str, context: CheckContext) -> bool:
        return self.longest(text) <= params.max_words

    def explain(self, params: SentenceWordsParams, response: str, context: CheckContext) -> str:
        return f"longest sentence: {self.longest(response)} words"


class GradeParams(Params):
    max_grade: Annotated[float, Field(ge=0, le=20)]


def grade_level(text: str) -> float | None:
    """Flesch-Kincaid grade of the prose (code removed); None when there are no words."""
    sentences = prose_sentences(text)
    words = [w for s in sentences for w in _text.words(s) if not w.isdigit()]
    if not words:
        return None
    syllables = sum(_text.syllables(w) for w in words)
    return 0.39 * len(words) / len(sentences) + 11.8 * syllables / len(words) - 15.59


class MaxGradeLevel(RuleType[GradeParams]):
    id = "style:max_grade_level"
    category = "style"
    english_only = True
    params_model = GradeParams
    summary = "Flesch-Kincaid grade level at most N (heuristic syllables; no words: unscored)."

    def _sample(self, rng: random.Random) -> dict:
        return {"max_grade": rng.choice((6.0, 8.0, 10.0, 12.0))}

    def phrasings(self, params: GradeParams) -> list[str]:
        g = f"{params.max_grade:g}"
        return [f"Write at a grade-{g} reading level or simpler.",
                f"Keep your language simple enough for a grade-{g} reader.",
                f"Use plain words and short sentences (reading level: grade {g} at most)."]

    def test(self, params: GradeParams, text: str, context: CheckContext) -> bool | None:
        grade = grade_level(text)
        return None if grade is None else grade <= params.max_grade

    def explain(self, params: GradeParams, response: str, context: CheckContext) -> str:
        grade = grade_level(response)
        return "no words to grade" if grade is None else f"grade level {grade:.1f}"


TYPES: tuple[RuleType, ...] = (
    AllLowercase(), AllUppercase(), NoEmojis(), NoFirstPerson(), MaxSentenceWords(), MaxGradeLevel(),
)
