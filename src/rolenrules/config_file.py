"""YAML config files (`--config`): a mapping of option: value, keys with dashes or underscores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The options in a YAML file, keys normalised to underscores. Errors name the file (and line)."""
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
    return {str(k).replace("-", "_"): v for k, v in data.items()}
