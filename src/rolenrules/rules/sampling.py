"""Sampling sets of mutually compatible verifiable rules from the registry."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from rolenrules.errors import ConfigError
from rolenrules.records import Rule
from rolenrules.rules.base import RuleType
from rolenrules.rules.registry import PLUGIN_ORIGINS, REGISTRY, get_rule_type


def candidate_types(types: Iterable[str] | None = None, *, exclude: Iterable[str] = (),
                    system_only: bool = False) -> list[RuleType]:
    """The rule types a sample may draw from, in registry order.

    Without `types`: the built-in types that are sampled by default (not the literal and regex
    types, whose parameters a user should choose, nor plugin types). Types named in `types` are
    drawn whatever their default, if they can be sampled at all."""
    excluded = set(exclude)
    if types is not None:
        pool = [get_rule_type(type_id) for type_id in dict.fromkeys(types)]
        for rule_type in pool:
            if not rule_type.sampleable:
                raise ConfigError(f"rule type '{rule_type.id}' cannot be sampled (its parameters come from the prompt)")
            if system_only and not rule_type.system_prompt_ok:
                raise ConfigError(f"rule type '{rule_type.id}' is not a system-prompt rule")
    else:
        pool = [t for t in REGISTRY.values() if t.sampleable and t.sampled_by_default and t.id not in PLUGIN_ORIGINS
                and (t.system_prompt_ok or not system_only)]
    return [t for t in pool if t.id not in excluded]


def _compatible(chosen: Sequence[RuleType], candidate: RuleType) -> bool:
    return all(candidate.id not in other.conflicts for other in chosen)


def choose_types(rng: random.Random, pool: Sequence[RuleType], n: int) -> list[RuleType]:
    """`n` pairwise compatible types from `pool`, drawn at random.

    A randomised depth-first search: it finds a compatible set whenever one exists, so a
    ConfigError means the request is impossible, not unlucky.
    """
    if n < 0:
        raise ConfigError("the number of rules must be at least 0")
    if n > len(pool):
        raise ConfigError(f"asked for {n} rules but only {len(pool)} rule types are eligible")
    order = list(pool)
    rng.shuffle(order)
    chosen: list[RuleType] = []

    def extend(start: int) -> bool:
        if len(chosen) == n:
            return True
        for index in range(start, len(order)):
            if len(order) - index < n - len(chosen):
                return False
            candidate = order[index]
            if _compatible(chosen, candidate):
                chosen.append(candidate)
                if extend(index + 1):
                    return True
                chosen.pop()
        return False

    if not extend(0):
        raise ConfigError(f"no {n} mutually compatible rule types among: {', '.join(t.id for t in pool)}")
    return chosen


def sample_rules(rng: random.Random, n: int, *, types: list[str] | None = None, exclude: Iterable[str] = frozenset(),
                 system_only: bool = False) -> list[Rule]:
    """`n` mutually compatible verifiable rules: types drawn without declared conflicts, each with
    sampled parameters and one of its phrasings as text. Same `rng` state, same rules."""
    chosen = choose_types(rng, candidate_types(types, exclude=exclude, system_only=system_only), n)
    return [rule_type.rule(rule_type.sample(rng), rng=rng) for rule_type in chosen]
