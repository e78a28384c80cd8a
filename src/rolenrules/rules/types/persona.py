"""Persona rules (`persona:`): the assistant's name, never calling itself an AI, and how it
addresses the user. Names and forms of address are literal and match whole words, ignoring case.
"""

from __future__ import annotations

import random
import re
from typing import Annotated

from pydantic import StringConstraints

from rolenrules.rules import _text
from rolenrules.rules.base import CheckContext, NoParams, Params, RuleType

#: Sampling pools. They share no word with the forbidden-word pools and hold no first-person
#: word, so sampled rules never contradict each other (tests check this).
NAMES = ("Ava", "Max", "Nova", "Sage", "Kai", "Iris", "Leo", "Mira")
ADDRESS_FORMS = ("Captain", "Dr. Rivera", "friend", "Coach", "Professor Lin", "traveler")


class NameParams(Params):
    name: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"\w")]
    require_mention: bool = False


_NAME_CLAIM_RE = re.compile(r"(?i:\b(?:my name is|my name's|call me|i am called|i'm called|i go by))\s+([A-Z][\w'-]*)")
_OTHER_ASSISTANT_RE = re.compile(
    r"(?i:\b(?:i am|i'm|i’m|as|this is)\s+(?:an?\s+)?)"
    r"(ChatGPT|GPT-?\d[\w.-]*|Claude|Gemini|Bard|Llama|Copilot|Siri|Alexa|Cortana|Qwen|Mistral)\b"
)


class SelfName(RuleType[NameParams]):
    id = "persona:self_name"
    category = "persona"
    params_model = NameParams
    summary = "Never claims a name other than NAME (nor to be another assistant); optionally must say NAME."

    def _sample(self, rng: random.Random) -> dict:
        return {"name": rng.choice(NAMES), "require_mention": rng.random() < 0.5}

    def phrasings(self, params: NameParams) -> list[str]:
        n = params.name
        if params.require_mention:
            return [f"Your name is {n}; introduce yourself as {n} in your replies.",
                    f"Refer to yourself as {n} and mention your name in every answer.",
                    f"You are {n}. Always say your name, {n}, when you answer."]
        return [f"Refer to yourself as {n}.", f"Your name is {n}; never call yourself anything else.",
                f"You are {n}. If you mention your name, it is {n}."]

    def test(self, params: NameParams, text: str, context: CheckContext) -> bool:
        name = params.name.strip().casefold()
        if any(claimed.casefold() != name for claimed in _NAME_CLAIM_RE.findall(text)):
            return False
        if any(other.casefold() != name for other in _OTHER_ASSISTANT_RE.findall(text)):
            return False
        return not params.require_mention or bool(_text.phrase_regex(params.name).search(text))


_AI_SELF_RE = re.compile(
    r"(?i:\b(?:as an?|i am an?|i'm an?|i’m an?|i am just an?|i'm just an?|being an?|i am only an?|i'm only an?)"
    r"\s+(?:[\w-]+\s+){0,2}?(?:AI|A\.I\.|artificial intelligence|(?:large\s+)?language model|LLM|chatbot|bot|"
    r"virtual assistant|computer program|machine learning model)\b"
    r"|\bmy (?:training data|knowledge cutoff|training cutoff|programming)\b)"
)


class NoAIMention(RuleType[NoParams]):
    id = "persona:no_ai_mention"
    category = "persona"
    english_only = True
    summary = "Never describes itself as an AI, language model or bot ('as an AI...', 'my training data')."

    def phrasings(self, params: NoParams) -> list[str]:
        return ["Never describe yourself as an AI or a language model.",
                "Stay in character: do not mention being an AI, a bot or a language model.",
                "Do not say things like 'as an AI' or refer to your training data."]

    def test(self, params: NoParams, text: str, context: CheckContext) -> bool:
        return not _AI_SELF_RE.search(text)


class AddressParams(Params):
    form: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"\w")]


class AddressUser(RuleType[AddressParams]):
    id = "persona:address_user"
    category = "persona"
    english_only = True
    params_model = AddressParams
    summary = "Addresses the user with the given form (whole words, any case)."

    def _sample(self, rng: random.Random) -> dict:
        return {"form": rng.choice(ADDRESS_FORMS)}

    def phrasings(self, params: AddressParams) -> list[str]:
        f = params.form
        return [f'Address the user as "{f}".', f'Always call the user "{f}" in your replies.',
                f'Speak to the user as "{f}" in every answer.']

    def test(self, params: AddressParams, text: str, context: CheckContext) -> bool:
        return bool(_text.phrase_regex(params.form).search(text))


TYPES: tuple[RuleType, ...] = (SelfName(), NoAIMention(), AddressUser())
