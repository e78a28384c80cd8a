"""System prompts that copy the prompt template's own example.

The system-prompt template shows the teacher one example reply (a bakery assistant). A weak
teacher copies it — role, rules or both — instead of writing a prompt for the requests it was
given; such a prompt is not the teacher's work and is rejected. The examples are read from the
rendered template itself (any JSON object in it with a `role` and `rules`), so an edited template
(`--templates`) is covered too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rolenrules.generate.dedup import overlap, shingles
from rolenrules.records import Message

#: Shared word 3-grams over the shorter text's at or above which a role or a rule is a copy. A role
#: copied with a new name or one more clause stays above 0.6; two unrelated roles share almost none.
ROLE_OVERLAP = 0.6
RULE_OVERLAP = 0.8
#: Word 3-grams a role may share with the example's before it is a copy, however long it is: six words
#: in a row ("You are Bella, the order assistant ...") is a copied sentence with text added after it.
ROLE_SHARED = 4
#: The persona name an example gives its assistant ("You are Bella, ..."): a small model that keeps the
#: name keeps the example, even when it rewrites the rest ("You are Bella, the order agent of ...").
_PERSONA = re.compile(r"\b[Yy]ou are ([A-Z][\w'-]+)")


@dataclass(frozen=True)
class TemplateExample:
    role: str
    rules: tuple[str, ...]

    @property
    def persona(self) -> str | None:
        match = _PERSONA.search(self.role)
        return match.group(1) if match else None


def template_examples(messages: Sequence[Message]) -> list[TemplateExample]:
    """Every JSON object in the rendered template shaped like a system-prompt reply."""
    decoder = json.JSONDecoder()
    found: list[TemplateExample] = []
    for message in messages:
        text = message.content
        start = text.find("{")
        while start >= 0:
            try:
                value, end = decoder.raw_decode(text, start)
            except ValueError:
                start = text.find("{", start + 1)
                continue
            if isinstance(value, dict) and isinstance(value.get("role"), str):
                rules = value.get("rules") if isinstance(value.get("rules"), list) else []
                texts = tuple(r["text"] if isinstance(r, dict) and isinstance(r.get("text"), str) else str(r)
                              for r in rules)
                found.append(TemplateExample(role=value["role"], rules=texts))
            start = text.find("{", end)
    return found


_PLACEHOLDER = re.compile(r"^\s*[<\[{].*[>\]}]\s*$", re.DOTALL)


def copied_example(role: str, rules: Sequence[str], examples: Sequence[TemplateExample]) -> str | None:
    """Why this role and these rules copy a template example (or only fill in its shape with a
    placeholder such as `<name of the assistant>`), or None when they do not."""
    if _PLACEHOLDER.match(role):
        return f"its role is a placeholder, not a role: {role[:160]!r}"
    for example in examples:
        share = overlap(role, example.role)
        shared = len(shingles(role) & shingles(example.role))
        if share >= ROLE_OVERLAP or shared >= ROLE_SHARED:
            return f"its role copies the prompt template's example ({share:.0%} of it): {role[:160]!r}"
        persona = example.persona
        if persona and re.search(rf"\b{re.escape(persona)}\b", role):
            return f"its role reuses the prompt template's example persona {persona!r}: {role[:160]!r}"
        for rule in rules:
            for original in example.rules:
                share = overlap(rule, original)
                if share >= RULE_OVERLAP:
                    return f"rule {rule[:120]!r} copies the prompt template's example rule {original!r}"
    return None
