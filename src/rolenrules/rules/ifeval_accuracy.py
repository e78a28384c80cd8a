"""IFEval accuracy: official strict and loose verdicts for responses in IFEval's input format,
and the accuracy figures IFEval reports.

    verdicts = score_rows(rows)                 # rows: instruction_id_list, kwargs, response (+ key/prompt)
    summary = accuracy_summary(rows, verdicts)  # prompt- and instruction-level accuracy, per instruction id

Loose mode is IFEval's (`RuleType.check_modes`): an instruction counts as followed if the
response, or the response without its first line, last line or both, each with or without
asterisks, follows it. The variants are computed once per response and shared by all of its
instructions.

Rows may also name any other registered rule type (ours, the literal and regex types, a
plugin's) with its parameters as `kwargs`, scored the same way; a check that cannot decide
(e.g. an undetectable reply language) counts as not followed, never as followed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError, DataError
from rolenrules.io.sources import jsonl_objects
from rolenrules.rules.base import CheckContext, Params, RuleType, loose_variants
from rolenrules.rules.registry import REGISTRY, unknown_type_message

_CONTEXT = CheckContext()


def _parse_row(row: Any, where: dict[str, Any]) -> tuple[list[tuple[RuleType, Params]], str]:
    if not isinstance(row, Mapping):
        raise DataError("expected a JSON object", **where)
    ids = row.get("instruction_id_list")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataError("must be a list of instruction (rule type) ids", field="instruction_id_list", **where)
    kwargs = row.get("kwargs")
    if kwargs is None:
        kwargs = [{}] * len(ids)
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise DataError(f"must be a list with one object per instruction ({len(ids)})", field="kwargs", **where)
    response = row.get("response")
    if not isinstance(response, str):
        raise DataError("missing or not a string", field="response", **where)
    checks: list[tuple[RuleType, Params]] = []
    for index, (instruction_id, given) in enumerate(zip(ids, kwargs)):
        if instruction_id not in REGISTRY:
            raise DataError(unknown_type_message(instruction_id), field=f"instruction_id_list[{index}]", **where)
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise DataError("must be an object", field=f"kwargs[{index}]", **where)
        # Hugging Face's copy of IFEval lists every kwarg name with null for the unused ones.
        cleaned = {name: value for name, value in given.items() if value is not None}
        rule_type = REGISTRY[instruction_id]
        try:
            params = rule_type.parse(cleaned)
        except ConfigError as error:
            raise DataError(f"bad kwargs for {instruction_id}: {error}", field=f"kwargs[{index}]", **where) from None
        checks.append((rule_type, params))
    return checks, response


def _score(checks: Sequence[tuple[RuleType, Params]], response: str) -> tuple[list[bool], list[bool]]:
    variants = loose_variants(response)  # once per response, shared by its instructions
    strict: list[bool] = []
    loose: list[bool] = []
    for rule_type, params in checks:
        followed, loosely = rule_type.check_modes(params, response, _CONTEXT, variants=variants)
        strict.append(bool(followed))
        loose.append(bool(loosely))
    return strict, loose


def _verdict_row(row: Mapping[str, Any], strict: list[bool], loose: list[bool]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "key" in row:
        out["key"] = row["key"]
    out["strict"] = strict
    out["loose"] = loose
    return out


def score_rows(rows: Iterable[Mapping[str, Any]], *, path: str | None = None) -> list[dict[str, Any]]:
    """One verdict row per input row, in order: `key` (when given), `strict`, `loose` (lists of
    booleans aligned with `instruction_id_list`). A bad row raises DataError naming it (1-based)."""
    verdicts = []
    for number, row in enumerate(rows, start=1):
        checks, response = _parse_row(row, {"path": path, "row": number})
        strict, loose = _score(checks, response)
        verdicts.append(_verdict_row(row, strict, loose))
    return verdicts


def accuracy_summary(rows: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Prompt-level and instruction-level accuracy, strict and loose, overall, per instruction id
    and per instruction group (IFEval's two report tiers)."""
    if len(rows) != len(verdicts):
        raise ValueError("rows and verdicts differ in length")
    totals = {"strict": [0, 0], "loose": [0, 0]}  # [prompts followed, instructions followed]
    instructions = 0
    per_id: dict[str, dict[str, int]] = defaultdict(lambda: {"strict": 0, "loose": 0, "count": 0})
    per_group: dict[str, dict[str, int]] = defaultdict(lambda: {"strict": 0, "loose": 0, "count": 0})
    for row, verdict in zip(rows, verdicts):
        ids = row["instruction_id_list"]
        instructions += len(ids)
        for mode in ("strict", "loose"):
            flags = verdict[mode]
            totals[mode][0] += all(flags)
            totals[mode][1] += sum(flags)
        for index, instruction_id in enumerate(ids):
            for bucket in (per_id[instruction_id], per_group[instruction_id.split(":")[0]]):
                bucket["count"] += 1
                bucket["strict"] += verdict["strict"][index]
                bucket["loose"] += verdict["loose"][index]

    def ratio(part: int, whole: int) -> float:
        return part / whole if whole else 0.0

    def table(buckets: dict[str, dict[str, int]]) -> dict[str, dict[str, float | int]]:
        return {name: {"strict": ratio(b["strict"], b["count"]), "loose": ratio(b["loose"], b["count"]),
                       "count": b["count"]} for name, b in sorted(buckets.items())}

    prompts = len(rows)
    return {
        "prompts": prompts,
        "instructions": instructions,
        "prompt_level_strict": ratio(totals["strict"][0], prompts),
        "prompt_level_loose": ratio(totals["loose"][0], prompts),
        "instruction_level_strict": ratio(totals["strict"][1], instructions),
        "instruction_level_loose": ratio(totals["loose"][1], instructions),
        "per_instruction": table(per_id),
        "per_group": table(per_group),
    }


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (blank lines skipped); DataError names the line of bad JSON."""
    return [row for _, row in _read_numbered(Path(path))]


def _read_numbered(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DataError("no such file", path=str(path))
    return list(jsonl_objects(path))


def score_file(path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Score a RESPONSES.jsonl file; write `verdicts.jsonl` and `summary.json` into `out_dir`
    (each atomically, and only after every row scored). Returns the summary."""
    from rolenrules.io import atomic_path, write_jsonl

    numbered = _read_numbered(Path(path))
    rows = [row for _, row in numbered]
    verdicts = []
    for line, row in numbered:
        checks, response = _parse_row(row, {"path": str(path), "line": line})
        verdicts.append(_verdict_row(row, *_score(checks, response)))
    summary = accuracy_summary(rows, verdicts)
    out_dir = Path(out_dir)
    write_jsonl(verdicts, out_dir / "verdicts.jsonl")
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
