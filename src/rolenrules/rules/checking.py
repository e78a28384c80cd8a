"""Records in, verdicts out: build verifiable `Rule` records and check them against responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.records import Rule, Verdict
from rolenrules.rules.base import CheckContext, Mode
from rolenrules.rules.registry import get_rule_type


def rule_from_type(type_id: str, params: Mapping[str, Any] | None = None, text: str | None = None) -> Rule:
    """A verifiable Rule of a registered type. Parameters are validated (ConfigError names the
    field); the text defaults to the type's first phrasing."""
    rule_type = get_rule_type(type_id)
    parsed = rule_type.parse(params or {})
    return Rule(
        text=text if text is not None else rule_type.describe(parsed),
        kind="verifiable",
        type=type_id,
        params=parsed.model_dump(mode="json"),
        category=rule_type.category,
    )


def check_rule(rule: Rule, response: str, *, mode: Mode = "strict", context: CheckContext | None = None,
               turn: int | None = None) -> Verdict:
    """The verdict of one rule on one response.

    Verifiable rules are checked by their rule type: passed True/False (source 'verifier'), or
    None with source 'unscored' when the check cannot decide. Judged rules are left to the LLM
    judge: passed None, source 'unscored'.
    """
    if rule.kind != "verifiable" or not rule.type:
        return Verdict(rule_id=rule.id, passed=None, source="unscored", reason="judged rule: needs the LLM judge",
                       turn=turn)
    rule_type = get_rule_type(rule.type)
    try:
        params = rule_type.parse(rule.params)
    except ConfigError as error:
        raise ConfigError(f"rule {rule.id}: {error}") from None
    context = context or CheckContext()
    passed = rule_type.check(params, response, mode=mode, context=context)
    detail = rule_type.explain(params, response, context)
    if passed is None:
        reason = f"{rule.type}: could not be checked" + (f" ({detail})" if detail else "")
        return Verdict(rule_id=rule.id, passed=None, source="unscored", reason=reason, turn=turn)
    outcome = "followed" if passed else "broken"
    reason = f"{rule.type}: {outcome}" + (f" ({detail})" if detail else "") + (" [loose]" if mode == "loose" else "")
    return Verdict(rule_id=rule.id, passed=passed, source="verifier", reason=reason, turn=turn)
