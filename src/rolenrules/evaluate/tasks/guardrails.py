"""RealGuardrails-style tasks: a real system prompt, its guardrails as judged rules, and a
`banlist` (if any) as one verifiable forbidden-words rule.
"""

from __future__ import annotations

from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.evaluate.tasks.base import conversation, field, row_number
from rolenrules.io.sources import Location
from rolenrules.records import Example, Message, Rule

#: Rule-library types for a RealGuardrails banlist, with their parameter name: the system-prompt
#: rule (whole words or phrases, any case, literal); IFEval's own check if it is ever missing.
BANLIST_TYPES: tuple[tuple[str, str], ...] = (
    ("content:forbidden_words", "words"),
    ("keywords:forbidden_words", "forbidden_words"),
)


def banlist_rule(words: list[str]) -> Rule:
    """A verifiable forbidden-words rule for a RealGuardrails banlist."""
    from rolenrules.rules import REGISTRY, rule_from_type

    for type_id, param in BANLIST_TYPES:
        if type_id in REGISTRY:
            rule = rule_from_type(type_id, {param: list(words)})
            return rule.model_copy(update={"category": "content"}) if rule.category == "other" else rule
    raise ConfigError("the rule library has no forbidden-words rule type (looked for "
                      + ", ".join(t for t, _ in BANLIST_TYPES) + ")")


def guardrail_rules(row: dict[str, Any], at: Location) -> list[Rule]:
    guardrails = field(row, "guardrails", list, at)
    rules = [Rule(text=g.strip(), kind="judged", category="guardrail")
             for g in guardrails if isinstance(g, str) and g.strip()]
    banlist = row.get("banlist")
    if banlist:
        if not isinstance(banlist, list) or not all(isinstance(w, str) for w in banlist):
            raise at.error("expected a list of words", field="banlist")
        rules.append(banlist_rule(banlist))
    if not rules:
        raise at.error("no guardrails to score", field="guardrails")
    return rules


def _turns(messages: list[Message]) -> str:
    return "multi-turn" if sum(m.role == "user" for m in messages) > 1 else "single-turn"


def handwritten(row: dict[str, Any], at: Location) -> Example:
    """RealGuardrails' handwritten cases; subsets single-turn / multi-turn."""
    messages = conversation(row, at)
    rules = guardrail_rules(row, at)
    meta = {"rules": [r.model_dump(mode="json") for r in rules], "subset": _turns(messages),
            "source_id": row.get("id")}
    return Example(id=str(row_number(at)), messages=messages, metadata=meta)


def distractors(row: dict[str, Any], at: Location) -> Example:
    """RealGuardrails' distractor cases; subsets `TASK/single-turn`, `TASK/multi-turn`."""
    messages = conversation(row, at)
    rules = guardrail_rules(row, at)
    kind = "multi-turn" if row.get("is_multiturn") else "single-turn"
    meta = {"rules": [r.model_dump(mode="json") for r in rules],
            "subset": f"{row.get('distractor_task', 'distractor')}/{kind}", "source_id": row.get("id"),
            "num_turns": row.get("num_turns"), "distractor_task": row.get("distractor_task")}
    return Example(id=str(row_number(at)), messages=messages, metadata=meta)
