"""Rule records to verdicts: check a `Rule` against a response, or validate it before any check."""

from __future__ import annotations

from collections import OrderedDict

from rolenrules.errors import ConfigError
from rolenrules.records import Rule, Verdict
from rolenrules.rules.base import CheckContext, Mode, Params, RuleType
from rolenrules.rules.registry import get_rule_type


#: Parsed parameters of recently checked rules, by object: a generation run checks the same few rules
#: (one system prompt's) on every reply and retry. The entry holds the rule, so its id is not reused,
#: and is used only while the registry still maps the rule's type to the same class.
_PARSED: OrderedDict[int, tuple[Rule, RuleType, Params]] = OrderedDict()
_PARSED_MAX = 1024


def _resolve(rule: Rule) -> tuple[RuleType, Params]:
    rule_type = get_rule_type(rule.type or "")
    entry = _PARSED.get(id(rule))
    if entry is not None and entry[0] is rule and entry[1] is rule_type:
        return rule_type, entry[2]
    try:
        params = rule_type.parse(rule.params)
    except ConfigError as error:
        raise ConfigError(f"rule {rule.id}: {error}") from None
    _PARSED[id(rule)] = (rule, rule_type, params)
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return rule_type, params


def validate_rule(rule: Rule) -> None:
    """ConfigError when a verifiable rule names an unknown type (with a "did you mean") or has bad
    parameters (naming the field): what a data file is checked for when it is loaded. Judged
    rules have nothing to validate."""
    if rule.kind == "verifiable" and rule.type:
        get_rule_type(rule.type).parse(rule.params)


def check_rule(rule: Rule, response: str, *, mode: Mode = "strict", context: CheckContext | None = None,
               turn: int | None = None) -> Verdict:
    """The verdict of one rule on one response.

    Verifiable rules are checked by their rule type: passed True/False (source 'verifier'), or
    None with source 'unscored' when the check cannot decide (the reason says why). Judged
    rules are left to the LLM judge: passed None, source 'unscored'.
    """
    if rule.kind != "verifiable" or not rule.type:
        return Verdict(rule_id=rule.id, passed=None, source="unscored", reason="judged rule: needs the LLM judge",
                       turn=turn)
    rule_type, params = _resolve(rule)
    context = context or CheckContext()
    passed = rule_type.check(params, response, mode=mode, context=context)
    detail = rule_type.explain(params, response, context)
    if passed is None:
        reason = f"{rule.type}: could not be checked" + (f" ({detail})" if detail else "")
        return Verdict(rule_id=rule.id, passed=None, source="unscored", reason=reason, turn=turn)
    outcome = "followed" if passed else "broken"
    reason = f"{rule.type}: {outcome}" + (f" ({detail})" if detail else "") + (" [loose]" if mode == "loose" else "")
    return Verdict(rule_id=rule.id, passed=passed, source="verifier", reason=reason, turn=turn)
