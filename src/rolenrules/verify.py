"""Verify one reply against its system prompt's rules: verifiable rules by the rule library,
judged rules by the LLM judge. Used to filter generated data and to score evaluations alike."""

from __future__ import annotations

from collections.abc import Sequence

from rolenrules.judge import Judge
from rolenrules.records import Message, Rule, Verdict
from rolenrules.rules import CheckContext, check_rule


async def verify_reply(response: str, rules: Sequence[Rule], *, system_prompt: str, conversation: Sequence[Message],
                      judge: Judge | None, turn: int | None = None, mode: str = "strict") -> list[Verdict]:
    """One verdict per rule, in rule order. `conversation` is everything before the reply, without
    the system message. Without a judge, judged rules are unscored (never passed)."""
    context = CheckContext(system_prompt=system_prompt,
                           user_turns=[m.content for m in conversation if m.role == "user"])
    judged = [r for r in rules if r.kind == "judged"]
    judged_verdicts: dict[str, Verdict] = {}
    if judged and judge is not None:
        for rule, verdict in zip(judged, await judge.judge(system_prompt, conversation, response, judged, turn=turn)):
            judged_verdicts[rule.id] = verdict
    verdicts = []
    for rule in rules:
        if rule.kind == "verifiable":
            verdicts.append(check_rule(rule, response, mode=mode, context=context, turn=turn))
        elif rule.id in judged_verdicts:
            verdicts.append(judged_verdicts[rule.id])
        else:
            verdicts.append(Verdict(rule_id=rule.id, passed=None, source="unscored", reason="no judge configured",
                                    turn=turn))
    return verdicts
