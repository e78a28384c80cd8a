"""Built-in benchmark tasks, read from a local data folder into benchmark `Example` records.

| task             | file (under the data folder)       | rules                                              |
| ---------------- | ---------------------------------- | -------------------------------------------------- |
| `ifeval`         | `ifeval/input_data.jsonl`          | IFEval constraints in the *user* turn (verifiable) |
| `sys-ifeval`     | `systemcheck/sys_ifeval.jsonl`     | the same constraints in the *system* message       |
| `realguardrails` | `systemcheck/handwritten.jsonl`    | `guardrails` (judged) + `banlist` (forbidden words) |
| `distractors`    | `systemcheck/distractors.jsonl`    | `guardrails` (judged), after distractor turns      |

Each IFEval instruction becomes a verifiable rule whose type is the IFEval id and whose params
are its kwargs; the original row is kept in `metadata.ifeval` so the official IFEval summary
(strict and loose) can be written beside the pass-rate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError, DataError
from rolenrules.evaluate.bench import final_user_prefix
from rolenrules.io.sources import jsonl_objects
from rolenrules.records import Example, Message, Rule

TASK_FILES: dict[str, str] = {
    "ifeval": "ifeval/input_data.jsonl",
    "sys-ifeval": "systemcheck/sys_ifeval.jsonl",
    "realguardrails": "systemcheck/handwritten.jsonl",
    "distractors": "systemcheck/distractors.jsonl",
}
TASKS = tuple(TASK_FILES)
#: Tasks scored only by the rule library (no judge needed).
VERIFIABLE_ONLY = frozenset({"ifeval", "sys-ifeval"})

#: Report categories of IFEval's instruction groups (when the rule library gives none).
_IFEVAL_CATEGORY = {
    "change_case": "style", "combination": "format", "detectable_content": "content",
    "detectable_format": "format", "keywords": "content", "language": "language",
    "length_constraints": "length", "punctuation": "style", "startend": "format",
}
#: Rule-library types for a RealGuardrails banlist, with their parameter name: the system-prompt
#: rule (whole words or phrases, any case, literal); IFEval's own check if it is ever missing.
BANLIST_TYPES: tuple[tuple[str, str], ...] = (
    ("content:forbidden_words", "words"),
    ("keywords:forbidden_words", "forbidden_words"),
)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """`data_dir`, else `$RNR_DATA_DIR`, else `../shared/data` relative to the working directory."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get("RNR_DATA_DIR"):
        return Path(os.environ["RNR_DATA_DIR"])
    return Path.cwd() / ".." / "shared" / "data"


def task_path(task: str, data_dir: str | Path | None = None) -> Path:
    if task not in TASK_FILES:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    root = resolve_data_dir(data_dir)
    path = root / TASK_FILES[task]
    if not path.is_file():
        raise ConfigError(f"task {task}: data file not found at {path}. Pass --data-dir DIR (the folder holding "
                          f"ifeval/ and systemcheck/) or set RNR_DATA_DIR.")
    return path


def _field(row: dict[str, Any], name: str, kind: type, path: Path, line: int) -> Any:
    value = row.get(name)
    if not isinstance(value, kind):
        raise DataError(f"missing or not a {kind.__name__}", path=str(path), line=line, field=name)
    return value


def _messages(row: dict[str, Any], path: Path, line: int) -> list[Message]:
    raw = _field(row, "messages", list, path, line)
    try:
        messages = [Message(role=m["role"], content=m["content"]) for m in raw]
        return final_user_prefix(messages)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"bad conversation ({error})", path=str(path), line=line, field="messages") from None


def ifeval_rules(instruction_ids: list[str], kwargs: list[dict[str, Any]], *, where: str = "") -> list[Rule]:
    """One verifiable rule per IFEval instruction: type = the IFEval id, params = its kwargs."""
    from rolenrules.rules import rule_from_type

    if len(instruction_ids) != len(kwargs):
        raise DataError("instruction_id_list and kwargs differ in length", path=where or None, field="kwargs")
    rules = []
    for iid, params in zip(instruction_ids, kwargs):
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            rule = rule_from_type(iid, params)
        except Exception as error:  # the rule library's own error names what is wrong
            raise DataError(f"rule {iid}: {error}", path=where or None, field="kwargs") from None
        if rule.category in ("", "other"):
            rule = rule.model_copy(update={"category": _IFEVAL_CATEGORY.get(iid.split(":")[0], "other")})
        rules.append(rule)
    return rules


def _ifeval_example(task: str, row: dict[str, Any], messages: list[Message], path: Path, line: int) -> Example:
    ids = _field(row, "instruction_id_list", list, path, line)
    kwargs = _field(row, "kwargs", list, path, line)
    key = row.get("key", line)
    rules = ifeval_rules(ids, kwargs, where=f"{path}:{line}")
    meta = {"task": task, "rules": [r.model_dump(mode="json") for r in rules],
            "ifeval": {"key": key, "prompt": row.get("prompt", messages[-1].content),
                       "instruction_id_list": ids, "kwargs": kwargs}}
    return Example(id=f"{task}-{key}", messages=messages, metadata=meta)


def _ifeval(path: Path) -> Iterator[Example]:
    for line, row in jsonl_objects(path):
        prompt = _field(row, "prompt", str, path, line)
        yield _ifeval_example("ifeval", row, [Message(role="user", content=prompt)], path, line)


def _sys_ifeval(path: Path) -> Iterator[Example]:
    for line, row in jsonl_objects(path):
        yield _ifeval_example("sys-ifeval", row, _messages(row, path, line), path, line)


def banlist_rule(words: list[str]) -> Rule:
    """A verifiable forbidden-words rule for a RealGuardrails banlist."""
    from rolenrules.rules import REGISTRY, rule_from_type

    for type_id, param in BANLIST_TYPES:
        if type_id in REGISTRY:
            rule = rule_from_type(type_id, {param: list(words)})
            return rule.model_copy(update={"category": "content"}) if rule.category == "other" else rule
    raise ConfigError("the rule library has no forbidden-words rule type (looked for "
                      + ", ".join(t for t, _ in BANLIST_TYPES) + ")")


def _guardrail_rules(row: dict[str, Any], path: Path, line: int) -> list[Rule]:
    guardrails = _field(row, "guardrails", list, path, line)
    rules = [Rule(text=g.strip(), kind="judged", category="guardrail")
             for g in guardrails if isinstance(g, str) and g.strip()]
    banlist = row.get("banlist")
    if banlist:
        if not isinstance(banlist, list) or not all(isinstance(w, str) for w in banlist):
            raise DataError("expected a list of words", path=str(path), line=line, field="banlist")
        rules.append(banlist_rule(banlist))
    if not rules:
        raise DataError("no guardrails to score", path=str(path), line=line, field="guardrails")
    return rules


def _turn_label(messages: list[Message]) -> str:
    return "multi-turn" if sum(m.role == "user" for m in messages) > 1 else "single-turn"


def _realguardrails(path: Path) -> Iterator[Example]:
    for line, row in jsonl_objects(path):
        messages = _messages(row, path, line)
        rules = _guardrail_rules(row, path, line)
        meta = {"task": "realguardrails", "rules": [r.model_dump(mode="json") for r in rules],
                "subset": _turn_label(messages), "source_id": row.get("id")}
        yield Example(id=f"realguardrails-{line}", messages=messages, metadata=meta)


def _distractors(path: Path) -> Iterator[Example]:
    for line, row in jsonl_objects(path):
        messages = _messages(row, path, line)
        rules = _guardrail_rules(row, path, line)
        kind = "multi-turn" if row.get("is_multiturn") else "single-turn"
        meta = {"task": "distractors", "rules": [r.model_dump(mode="json") for r in rules],
                "subset": f"{row.get('distractor_task', 'distractor')}/{kind}", "source_id": row.get("id"),
                "num_turns": row.get("num_turns"), "distractor_task": row.get("distractor_task")}
        yield Example(id=f"distractors-{line}", messages=messages, metadata=meta)


_LOADERS: dict[str, Callable[[Path], Iterator[Example]]] = {
    "ifeval": _ifeval,
    "sys-ifeval": _sys_ifeval,
    "realguardrails": _realguardrails,
    "distractors": _distractors,
}


def load_task(task: str, data_dir: str | Path | None = None, *, limit: int | None = None) -> list[Example]:
    """The benchmark examples of a built-in task (the first `limit`, in file order)."""
    path = task_path(task, data_dir)
    examples = []
    for example in _LOADERS[task](path):
        examples.append(example)
        if limit is not None and len(examples) >= limit:
            break
    return examples
