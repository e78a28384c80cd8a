"""Language rules (`language:`): the language every reply is written in.

Unlike IFEval's `language:response_language` (in `types/ifeval.py`), `language:reply_language`
reports a failed detection as unscored (None), never as a pass.
"""

from __future__ import annotations

import random
from typing import Annotated

from pydantic import StringConstraints

from rolenrules.rules import _text
from rolenrules.rules.base import CheckContext, Params, RuleType

#: Languages sampled for the reply-language rule (langdetect codes) and their names.
REPLY_LANGUAGES: dict[str, str] = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "ru": "Russian", "ja": "Japanese", "zh-cn": "Chinese", "ko": "Korean", "ar": "Arabic",
    "hi": "Hindi", "tr": "Turkish", "pl": "Polish", "sv": "Swedish", "vi": "Vietnamese",
}


class ReplyLanguageParams(Params):
    language: Annotated[str, StringConstraints(min_length=2, max_length=5, pattern=r"^[a-z]{2}(-[a-z]{2})?$")]


class ReplyLanguage(RuleType[ReplyLanguageParams]):
    id = "language:reply_language"
    category = "language"
    params_model = ReplyLanguageParams
    sets_language = True
    summary = "Replies are in the given language (langdetect, seeded, code blocks ignored; undetectable: unscored)."

    def _sample(self, rng: random.Random) -> dict:
        return {"language": rng.choice(sorted(REPLY_LANGUAGES))}

    def phrasings(self, params: ReplyLanguageParams) -> list[str]:
        name = REPLY_LANGUAGES.get(params.language, params.language)
        return [f"Always reply in {name}, whatever language the user writes in.",
                f"Respond only in {name}.", f"All of your answers must be written in {name}."]

    def test(self, params: ReplyLanguageParams, text: str, context: CheckContext) -> bool | None:
        detected = _text.detect_language(_text.strip_code_blocks(text))
        if detected is None or detected == "unknown":
            return None
        # "zh" accepts both of langdetect's Chinese codes.
        return detected == params.language or detected.split("-")[0] == params.language

    def explain(self, params: ReplyLanguageParams, response: str, context: CheckContext) -> str:
        detected = _text.detect_language(_text.strip_code_blocks(response))
        return f"detected language: {detected or 'none (no letters to detect)'}"


TYPES: tuple[RuleType, ...] = (ReplyLanguage(),)
