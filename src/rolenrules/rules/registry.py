"""The explicit registry of rule types, and their conflict map made symmetric.

Built-in types are listed here, one module per id group; nothing registers itself on import.
Plugins (a user's Python file, an installed package) add theirs through `register`, called by
`rolenrules.rules.plugins.load_rule_plugins`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.records import CATEGORIES, Rule
from rolenrules.rules.base import RuleType
from rolenrules.rules.types.ifeval import IFEVAL_IDS

#: The built-in rule-type modules (`rules/types/NAME.py`, each ending with its `TYPES` tuple), in
#: registry order. A new id group is a new module and one name here.
BUILTIN_MODULES = ("ifeval", "length", "format", "language", "style", "persona", "content", "safety", "text", "regex")

#: Every rule type by id: built-in ones first, in this order, then plugin types as loaded.
REGISTRY: dict[str, RuleType] = {}
#: Where each plugin type came from (its file or entry point); built-in types are not listed.
PLUGIN_ORIGINS: dict[str, str] = {}


def _problem(rule_type: Any, known: Mapping[str, RuleType]) -> str | None:
    """What is wrong with a type about to be registered (None: nothing)."""
    if not isinstance(rule_type, RuleType):
        return f"{rule_type!r} is not a RuleType instance"
    type_id = getattr(rule_type, "id", None)
    if not isinstance(type_id, str) or type_id.count(":") != 1 or not all(type_id.split(":")):
        return f"rule type id {type_id!r} is not 'group:name'"
    if getattr(rule_type, "category", None) not in CATEGORIES:
        return f"rule type '{type_id}': category must be one of {', '.join(CATEGORIES)}"
    if rule_type.passes_when_undetected and rule_type.system_prompt_ok:
        return f"rule type '{type_id}' passes when detection fails, so it cannot be system_prompt_ok"
    unknown = [other for other in rule_type.declared_conflicts if other not in known]
    if unknown:
        return f"rule type '{type_id}' declares a conflict with unknown type {unknown[0]}"
    return None


def _link() -> None:
    """Recompute every type's conflicts: declared ones, made symmetric, plus the declared properties
    (conflicts with all; language-setting types against English-only ones)."""
    conflicts: dict[str, set[str]] = {type_id: {type_id} for type_id in REGISTRY}  # never twice in one set

    def both(a: str, b: str) -> None:
        conflicts[a].add(b)
        conflicts[b].add(a)

    for rule_type in REGISTRY.values():
        for other in rule_type.declared_conflicts:
            both(rule_type.id, other)
        for other in REGISTRY.values():
            if rule_type.conflicts_with_all or (rule_type.sets_language and (other.english_only or other.sets_language)):
                both(rule_type.id, other.id)
    for type_id, rule_type in REGISTRY.items():
        rule_type._conflicts = frozenset(conflicts[type_id])


def register(types: Iterable[RuleType], *, origin: str | None = None) -> list[RuleType]:
    """Add rule types to the registry (`origin`: the plugin they come from; None for built-ins).

    All or nothing: a type whose id is taken (by a built-in or another plugin), malformed, or
    conflicting with an unknown id is a ConfigError naming the origin, and nothing is added.
    Registering the very same instances again is a no-op.
    """
    batch = list(types)
    prefix = f"rules plugin {origin}: " if origin else ""
    fresh: dict[str, RuleType] = {}
    for rule_type in batch:
        problem = _problem(rule_type, {**REGISTRY, **fresh, **{getattr(t, "id", ""): t for t in batch}})
        if problem:
            raise ConfigError(prefix + problem)
        taken = REGISTRY.get(rule_type.id) or fresh.get(rule_type.id)
        if taken is rule_type:
            continue
        if taken is not None:
            owner = PLUGIN_ORIGINS.get(rule_type.id)
            where = f"defined by rules plugin {owner}" if owner else "a built-in rule type"
            if rule_type.id in fresh:
                where = "defined twice in it"
            raise ConfigError(f"{prefix}rule type id '{rule_type.id}' is already {where}")
        fresh[rule_type.id] = rule_type
    REGISTRY.update(fresh)
    if origin:
        PLUGIN_ORIGINS.update(dict.fromkeys(fresh, origin))
    _link()
    return batch


register(rule_type for name in BUILTIN_MODULES
         for rule_type in importlib.import_module(f"rolenrules.rules.types.{name}").TYPES)


def unknown_type_message(type_id: str) -> str:
    """'unknown rule type X; did you mean Y?' with the closest ids (difflib), else the groups."""
    close = difflib.get_close_matches(type_id, list(REGISTRY), n=3, cutoff=0.6)
    if close:
        quoted = [f"'{c}'" for c in close]
        hint = "did you mean " + (f"{', '.join(quoted[:-1])} or " if len(quoted) > 1 else "") + quoted[-1] + "?"
    else:
        groups = sorted({t.group for t in REGISTRY.values()})
        hint = f"known groups: {', '.join(groups)}; a plugin's types need --rules-plugin FILE"
    return f"unknown rule type '{type_id}'; {hint} (`rnr rules list` shows all {len(REGISTRY)})"


def get_rule_type(type_id: str) -> RuleType:
    """The rule type with this id; ConfigError with the closest known ids otherwise."""
    try:
        return REGISTRY[type_id]
    except KeyError:
        raise ConfigError(unknown_type_message(type_id)) from None


def rule_from_type(type_id: str, params: Mapping[str, Any] | None = None, text: str | None = None) -> Rule:
    """A verifiable Rule of a registered type. Parameters are validated (ConfigError names the
    field); the text defaults to the type's first phrasing."""
    return get_rule_type(type_id).rule(params, text=text)
