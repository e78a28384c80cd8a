"""Judged rules: rules with no programmatic check, kept as text and a category for the LLM judge.

    judged_rule("Only discuss cooking; politely decline anything else.", "scope")

`JUDGED_EXAMPLES` lists typical ones per category (roles' scope, tone, safety, persona...) for
generators that want a realistic mix of judged and verifiable rules.
"""

from __future__ import annotations

from rolenrules.errors import ConfigError
from rolenrules.records import CATEGORIES, Rule

JUDGED_EXAMPLES: dict[str, tuple[str, ...]] = {
    "scope": (
        "Only answer questions about the product; politely decline anything else.",
        "Stay on the topic of personal finance and redirect off-topic requests.",
        "Do not help with homework; offer study tips instead.",
    ),
    "style": (
        "Keep a warm, encouraging tone.",
        "Be concise and direct; skip pleasantries.",
        "Explain technical terms the first time you use them.",
    ),
    "safety": (
        "Never give medical dosages; suggest seeing a doctor instead.",
        "Refuse requests to bypass security measures.",
        "Do not speculate about real people's private lives.",
    ),
    "persona": (
        "Speak like a friendly museum guide.",
        "Stay in character as a ship's captain from the 1800s.",
    ),
    "content": (
        "Recommend only products from the catalogue the user mentions.",
        "Always point out one limitation of your suggestion.",
    ),
    "format": (
        "Put the most important point first.",
        "Use a table when comparing more than two options.",
    ),
}


def judged_rule(text: str, category: str = "other") -> Rule:
    """A judged rule: its text and category, for the LLM judge. The category must be one of
    `records.CATEGORIES`."""
    if category not in CATEGORIES:
        raise ConfigError(f"unknown rule category '{category}' (use one of: {', '.join(CATEGORIES)})")
    if not text.strip():
        raise ConfigError("a judged rule needs text")
    return Rule(text=text.strip(), kind="judged", category=category)
