"""The rule library as a reward function for RL trainers (TRL's GRPO `reward_funcs`).

    trainer = GRPOTrainer(..., reward_funcs=[make_reward(mode="strict")])

TRL calls a reward function with `prompts`, `completions` and every other dataset column as
keyword arguments; a `rules` column (one list of rules per example, as `Rule` records, dicts
or JSON text) is what these functions read. Completions may be plain strings or conversations
(lists of `{"role", "content"}` messages); the last message's content is scored. When prompts
are conversations, their system message is passed to checks that need it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from rolenrules.errors import DataError
from rolenrules.records import Rule
from rolenrules.rules.base import CheckContext, Mode
from rolenrules.rules.verdicts import check_rule

Unscored = Literal["fail", "skip"]

#: The metric `make_reward`'s function logs through TRL's `log_metric`: the share of completions that
#: followed every verifiable rule.
ALL_FOLLOWED = "rules/all_followed"


def _text_of(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return ""


def _context_of(prompt: Any) -> CheckContext:
    if isinstance(prompt, Sequence) and not isinstance(prompt, str):
        messages = [m for m in prompt if isinstance(m, dict)]
        system = next((str(m.get("content", "")) for m in messages if m.get("role") == "system"), None)
        users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
        return CheckContext(system_prompt=system, user_turns=users)
    return CheckContext()


def _as_rules(value: Any, index: int) -> list[Rule]:
    if isinstance(value, str):
        value = json.loads(value)
    if value is None:
        return []
    try:
        return [r if isinstance(r, Rule) else Rule.model_validate(r) for r in value]
    except (TypeError, ValueError) as error:
        raise DataError(f"bad rules: {error}", row=index, field="rules") from None


def reward(completions: list[Any], rules: list[Any], *, mode: Mode = "strict", all_or_nothing: bool = False,
           unscored: Unscored = "fail", prompts: list[Any] | None = None, **_: Any) -> list[float]:
    """Per completion: the fraction of its verifiable rules followed (or 1.0/0.0 when
    `all_or_nothing`). Judged rules are ignored; an unscored verifiable rule counts as broken
    (`unscored="fail"`, nothing unverified is rewarded) or is left out (`"skip"`). A completion
    with no verifiable rule to check gets 1.0."""
    if len(rules) != len(completions):
        raise DataError(f"{len(completions)} completions but {len(rules)} rule lists", field="rules")
    scores: list[float] = []
    for index, (completion, rule_list) in enumerate(zip(completions, rules)):
        text = _text_of(completion)
        context = _context_of(prompts[index]) if prompts is not None and index < len(prompts) else CheckContext()
        outcomes: list[bool] = []
        for rule in _as_rules(rule_list, index):
            if rule.kind != "verifiable":
                continue
            passed = check_rule(rule, text, mode=mode, context=context).passed
            if passed is None:
                if unscored == "skip":
                    continue
                passed = False
            outcomes.append(passed)
        if not outcomes:
            scores.append(1.0)
        elif all_or_nothing:
            scores.append(1.0 if all(outcomes) else 0.0)
        else:
            scores.append(sum(outcomes) / len(outcomes))
    return scores


def make_reward(*, mode: Mode = "strict", all_or_nothing: bool = False,
                unscored: Unscored = "fail") -> Callable[..., list[float]]:
    """A named reward function for TRL, reading the `rules` column; it also logs `rules/all_followed`."""

    def rule_reward(completions: list[Any], rules: list[Any], **kwargs: Any) -> list[float]:
        scores = reward(completions, rules, mode=mode, all_or_nothing=all_or_nothing, unscored=unscored, **kwargs)
        log_metric = kwargs.get("log_metric")  # TRL's GRPOTrainer passes one; it is averaged per logging step
        if callable(log_metric) and scores:
            # The benchmark's pass-rate beside the reward: completions that followed every verifiable rule.
            log_metric(ALL_FOLLOWED, sum(score == 1.0 for score in scores) / len(scores))
        return scores

    rule_reward.__name__ = f"rules_{'all' if all_or_nothing else 'fraction'}_{mode}"
    return rule_reward
