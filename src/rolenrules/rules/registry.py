"""The explicit registry of rule types, and their conflict map made symmetric.

Types are listed here, module by module; nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Iterable

from rolenrules.errors import ConfigError
from rolenrules.rules import ifeval_types, system_content, system_format, system_length, system_style
from rolenrules.rules.base import RuleType


def _build(types: Iterable[RuleType]) -> dict[str, RuleType]:
    registry: dict[str, RuleType] = {}
    for rule_type in types:
        if rule_type.id in registry:
            raise RuntimeError(f"duplicate rule type id {rule_type.id}")
        if rule_type.id.count(":") != 1:
            raise RuntimeError(f"rule type id {rule_type.id!r} is not 'group:name'")
        registry[rule_type.id] = rule_type
    conflicts: dict[str, set[str]] = {type_id: set() for type_id in registry}
    for rule_type in registry.values():
        for other in rule_type.declared_conflicts:
            if other not in registry:
                raise RuntimeError(f"{rule_type.id} declares a conflict with unknown type {other}")
            conflicts[rule_type.id].add(other)
            conflicts[other].add(rule_type.id)
        if rule_type.conflicts_with_all:
            for other in registry:
                conflicts[rule_type.id].add(other)
                conflicts[other].add(rule_type.id)
    for type_id, rule_type in registry.items():
        # A type never appears twice in one rule set either.
        rule_type._conflicts = frozenset(conflicts[type_id] | {type_id})
    return registry


REGISTRY: dict[str, RuleType] = _build((
    *ifeval_types.TYPES,
    *system_length.TYPES,
    *system_format.TYPES,
    *system_style.TYPES,
    *system_content.TYPES,
))

IFEVAL_IDS = ifeval_types.IFEVAL_IDS


def get_rule_type(type_id: str) -> RuleType:
    """The rule type with this id; ConfigError listing the known ids otherwise."""
    try:
        return REGISTRY[type_id]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"unknown rule type '{type_id}'; known types: {known}") from None
