"""Held-out system prompts: the ids a benchmark's system prompts are known by, the exclusion file
that carries them from `rnr bench build` to `rnr train` (`BENCH.exclude.txt`), and the one test
both sides apply, so a benchmark prompt can never leak into training under another id.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError, DataError
from rolenrules.records import Example


def system_text_id(text: str) -> str:
    """An id for a system message's text, for training files that kept only `messages`."""
    return "sys-" + hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]


def held_out_ids(example: Example) -> set[str]:
    """Every id an example's system prompt is known by: `SystemPrompt.id`, the hash of its system
    message text (`sys-...`) and `metadata["system_prompt_id"]`."""
    ids = set()
    if example.system_prompt is not None:
        ids.add(example.system_prompt.id)
    text = example.system_text or (example.system_prompt.render() if example.system_prompt else None)
    if text:
        ids.add(system_text_id(text))
    if example.metadata.get("system_prompt_id"):
        ids.add(str(example.metadata["system_prompt_id"]))
    return ids


def is_excluded(example: Example, excluded: set[str]) -> bool:
    """True when `example` is under a held-out system prompt (by any of its ids)."""
    return bool(held_out_ids(example) & excluded)


def exclude_path(bench_path: str | Path) -> Path:
    """`bench.jsonl` -> `bench.exclude.txt` beside it."""
    bench_path = Path(bench_path)
    stem = bench_path.name[: -len(".jsonl")] if bench_path.name.endswith(".jsonl") else bench_path.stem
    return bench_path.with_name(f"{stem}.exclude.txt")


def read_exclusions(path: str | Path) -> set[str]:
    """Held-out system-prompt ids: one per line (`rnr bench build`'s BENCH.exclude.txt), or JSONL rows with
    `system_prompt_id`, `system_prompt.id` or `id`. Blank lines and `#` comments are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read exclusion file: {error.strerror or error}") from None
    ids: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            ids.add(line)
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"invalid JSON: {error.msg}", path=str(path), line=number) from None
        found = _row_prompt_id(row)
        if found is None:
            raise DataError("no system prompt id (expected `system_prompt_id`, `system_prompt.id` or `id`)",
                            path=str(path), line=number, field="system_prompt_id")
        ids.add(found)
    return ids


def _row_prompt_id(row: dict[str, Any]) -> str | None:
    if row.get("system_prompt_id"):
        return str(row["system_prompt_id"])
    prompt = row.get("system_prompt")
    if isinstance(prompt, dict) and prompt.get("id"):
        return str(prompt["id"])
    if row.get("id"):
        return str(row["id"])
    return None
