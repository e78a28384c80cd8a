"""Rule types from outside the package: a user's Python file, or an installed package.

A plugin is written like a built-in module of `rules/types/`: classes on `RuleType`, and a
`TYPES` tuple of their instances (docs/extending.md). It is loaded by

* a file path: `--rules-plugin my_rules.py` on every command that reads rules, or
  `load_rule_plugins(["my_rules.py"])` from Python (e.g. before building a reward function);
* an installed package's entry point in the group `rolenrules.rules`, naming a module with
  `TYPES` (or the `TYPES` tuple itself): loaded by every `load_rule_plugins` call.

A plugin that cannot be imported, defines no types, or reuses a built-in id is a one-line
ConfigError. Loading the same plugin again is a no-op. Plugin types are drawn into generated
data only when asked for by id (`--rule-types`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.rules.base import RuleType
from rolenrules.rules.registry import register

ENTRY_POINT_GROUP = "rolenrules.rules"

#: Plugins already loaded (a resolved file path or 'entry point NAME'), with their types.
_LOADED: dict[str, list[RuleType]] = {}


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _types_of(obj: Any, origin: str) -> list[RuleType]:
    found = getattr(obj, "TYPES", obj)
    if isinstance(found, RuleType):
        found = (found,)
    if not isinstance(found, (list, tuple)):
        raise ConfigError(f"rules plugin {origin}: defines no TYPES (a tuple of RuleType instances, as in "
                          "rolenrules/rules/types/*.py)")
    if not found:
        raise ConfigError(f"rules plugin {origin}: TYPES is empty")
    return list(found)


def _check_usable(types: list[RuleType], origin: str) -> None:
    """Each type must at least describe itself, so `rnr rules list` and generation cannot crash on it."""
    for rule_type in types:
        if not isinstance(rule_type, RuleType) or not isinstance(getattr(rule_type, "id", None), str):
            continue  # `register` names what is wrong with it
        try:
            text = rule_type.example()
        except Exception as error:  # a plugin's own code: any failure is the plugin's, reported in one line
            raise ConfigError(f"rules plugin {origin}: rule type '{rule_type.id}' cannot describe its example "
                              f"parameters (set example_params, or sampleable = False): {_one_line(error)}") from None
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"rules plugin {origin}: rule type '{rule_type.id}' describes itself with no text")


def _load(types: list[RuleType], origin: str) -> list[RuleType]:
    _check_usable(types, origin)
    return register(types, origin=origin)  # checks ids, categories and conflicts before adding anything


def load_file(path: str | Path) -> list[RuleType]:
    """Import a plugin file and register its `TYPES`."""
    path = Path(path)
    key = str(path.resolve())
    if key in _LOADED:
        return _LOADED[key]
    if not path.is_file():
        raise ConfigError(f"rules plugin {path}: no such file")
    # A unique module name, registered in sys.modules so pydantic can resolve the file's annotations.
    name = f"rolenrules_plugin_{path.stem}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"rules plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # any failure inside the user's file is reported, never a traceback
            raise ConfigError(f"rules plugin {path}: failed to import: {_one_line(error)}") from None
        types = _load(_types_of(module, str(path)), str(path))
    except ConfigError:
        del sys.modules[name]
        raise
    _LOADED[key] = types
    return types


def load_entry_points() -> list[RuleType]:
    """Register the rule types of every installed package's `rolenrules.rules` entry point."""
    loaded: list[RuleType] = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry point {entry.name} ({entry.value})"
        if key not in _LOADED:
            try:
                obj = entry.load()
            except Exception as error:  # a broken installed plugin is one line, not a traceback
                raise ConfigError(f"rules plugin {key}: failed to import: {_one_line(error)}") from None
            _LOADED[key] = _load(_types_of(obj, key), key)
        loaded += _LOADED[key]
    return loaded


def load_rule_plugins(paths: Iterable[str | Path] | None = None, *, entry_points: bool = True) -> list[RuleType]:
    """Register the rule types of plugin files (`paths`) and, unless `entry_points=False`, of
    installed packages. Returns the plugin types; ConfigError (one line) for a broken plugin."""
    loaded = load_entry_points() if entry_points else []
    for path in paths or ():
        loaded += load_file(path)
    return loaded
