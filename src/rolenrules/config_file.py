"""YAML config files (`--config`): a mapping of option: value, keys with dashes or underscores.

Paths written in a config file are relative to the file's folder, like a Makefile's or a
docker-compose file's, so an example config works from any folder — the one rule for `rnr
generate`, `rnr train` and `rnr run`. Each config class names its path options and their kind
(`PathKinds`); flags typed on the command line stay relative to the current folder, as usual.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from rolenrules.errors import ConfigError

#: input / output: a file or folder, resolved against the config file's folder (an `hf://` id is left
#: as it is); data: the same for the PATH of a `PATH[:WEIGHT]` spec (or a {path, weight} mapping);
#: model: a local folder relative to the config file, else a hub id left as it is; flag: a value that
#: is either a yes/no switch or an output path (`pairs: true`).
PathKind = Literal["input", "output", "data", "model", "flag"]
PathKinds = Mapping[str, PathKind]

_SWITCHES = {"true", "false", "yes", "no", "on", "off", "1", "0", ""}


def split_weight(spec: str) -> tuple[str, float | None]:
    """`PATH[:WEIGHT]` -> (PATH, WEIGHT or None). The suffix is a weight only when it is a number, so
    `hf://owner/name:train` stays a path."""
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return spec, None


def load_yaml_mapping(path: str | Path, paths: PathKinds | None = None) -> dict[str, Any]:
    """The options in a YAML file, keys normalised to underscores, the options named in `paths`
    resolved against the file's folder. Errors name the file (and line)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(error, 'problem', None) or error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of option: value, not {type(data).__name__}")
    values = {str(k).replace("-", "_"): v for k, v in data.items()}
    return resolve_paths(values, path.resolve().parent, paths or {}, source=str(path))


def resolve_paths(values: dict[str, Any], base: Path, paths: PathKinds, *, source: str) -> dict[str, Any]:
    """`values` with each option named in `paths` made relative to `base` (see `PathKind`)."""
    resolved = dict(values)
    for key, kind in paths.items():
        value = resolved.get(key)
        if value is None:
            continue
        where = f"{source}: {key}"
        if isinstance(value, list):
            resolved[key] = [_resolve(v, kind, base, where) for v in value]
        else:
            resolved[key] = _resolve(value, kind, base, where)
    return resolved


def _join(base: Path, value: str) -> str:
    """base/value, normalised, keeping a trailing `/` (it says "a folder" to the writers)."""
    joined = os.path.normpath(base / os.path.expanduser(value))
    return joined + "/" if value.endswith("/") and not joined.endswith("/") else joined


def _resolve(value: Any, kind: PathKind, base: Path, where: str) -> Any:
    if kind == "data" and isinstance(value, dict) and isinstance(value.get("path"), str):
        return {**value, "path": _resolve(value["path"], "input", base, where)}
    if isinstance(value, bool) or not isinstance(value, str):
        return value  # not a path: the config's own validation reports it
    if kind == "flag" and value.strip().lower() in _SWITCHES:
        return value
    if kind == "data":
        path, weight = split_weight(value)
        resolved = _resolve(path, "input", base, where)
        return resolved if weight is None else f"{resolved}:{weight:g}"
    if value.startswith("hf://") or os.path.isabs(os.path.expanduser(value)):
        return os.path.expanduser(value)
    if kind != "model":
        return _join(base, value)
    if (base / value).exists():
        return _join(base, value)
    if Path(value).exists():
        # Found only from the current folder: that would be the silent fall-back this rule exists to stop.
        raise ConfigError(f"{where}: {value} is not in the config file's folder ({base}), where relative paths in "
                          "a config file are looked up; it exists relative to the current folder: give its absolute "
                          "path")
    return value  # a hub id
