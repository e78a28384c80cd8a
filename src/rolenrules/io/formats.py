"""Instruction-data formats, each normalised into `Example` records.

| format          | a row looks like                                                      |
| --------------- | --------------------------------------------------------------------- |
| `messages`      | `{"messages": [{"role": ..., "content": ...}, ...]}` (OpenAI / TRL; also rnr's own records) |
| `alpaca`        | `{"instruction": ..., "input": ..., "output": ...}`                   |
| `sharegpt`      | `{"conversations": [{"from": "human"/"gpt"/"system", "value": ...}]}` |
| `ultrachat`     | `{"data": ["user turn", "assistant turn", ...]}`                      |
| `self-instruct` | `{"instruction": ..., "instances": [{"input": ..., "output": ...}]}`  |
| `prompt`        | `{"prompt": ..., "response"/"completion": ...}` (IFEval-style)        |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from rolenrules.errors import validation_problems
from rolenrules.io.sources import Location
from rolenrules.records import Example, Message, SystemPrompt, Verdict, stable_id

FORMATS = ("messages", "alpaca", "sharegpt", "ultrachat", "self-instruct", "prompt")

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
                   "system": "system"}


def detect_format(row: Any, loc: Location) -> str:
    if not isinstance(row, dict):
        raise loc.error(f"expected a JSON object, got {type(row).__name__}")
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instances" in row and "instruction" in row:
        return "self-instruct"
    if "instruction" in row:
        return "alpaca"
    if "data" in row and isinstance(row["data"], list):
        return "ultrachat"
    if "prompt" in row:
        return "prompt"
    keys = ", ".join(sorted(row)[:8]) or "none"
    raise loc.error(f"cannot tell the format from the fields ({keys}); pass --format one of {', '.join(FORMATS)}")


def _text(row: dict[str, Any], field: str, loc: Location, *, required: bool = True) -> str:
    value = row.get(field)
    if value is None:
        if required:
            raise loc.error("missing", field=field)
        return ""
    if not isinstance(value, str):
        raise loc.error(f"expected a string, got {type(value).__name__}", field=field)
    if required and not value.strip():
        raise loc.error("is empty", field=field)
    return value


def _row_id(row: dict[str, Any], messages: list[Message]) -> str:
    for key in ("id", "key", "idx", "uid"):
        if row.get(key) not in (None, ""):
            return str(row[key])
    return stable_id([m.model_dump() for m in messages])


def _user_prompt(instruction: str, extra: str) -> str:
    return f"{instruction.strip()}\n\n{extra.strip()}" if extra.strip() else instruction.strip()


def _alpaca(row: dict[str, Any], loc: Location) -> Example:
    instruction = _text(row, "instruction", loc)
    extra = _text(row, "input", loc, required=False)
    output = _text(row, "output", loc, required=False)
    messages = [Message(role="user", content=_user_prompt(instruction, extra))]
    if output.strip():
        messages.append(Message(role="assistant", content=output))
    return Example(id=_row_id(row, messages), messages=messages)


def _self_instruct(row: dict[str, Any], loc: Location) -> Example:
    instruction = _text(row, "instruction", loc)
    instances = row.get("instances")
    if not isinstance(instances, list):
        raise loc.error("expected a list of {input, output}", field="instances")
    first = instances[0] if instances else {}
    if not isinstance(first, dict):
        raise loc.error("expected an object with input/output", field="instances[0]")
    extra = _text(first, "input", loc, required=False)
    output = _text(first, "output", loc, required=False)
    messages = [Message(role="user", content=_user_prompt(instruction, extra))]
    if output.strip():
        messages.append(Message(role="assistant", content=output))
    return Example(id=_row_id(row, messages), messages=messages, metadata={"task_name": row.get("name")} if row.get("name") else {})


def _turns(items: Any, loc: Location, field: str, role_key: str, content_key: str,
           role_map: dict[str, str] | None) -> list[Message]:
    if not isinstance(items, list) or not items:
        raise loc.error("expected a non-empty list of turns", field=field)
    messages = []
    for i, turn in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(turn, dict):
            raise loc.error(f"expected an object, got {type(turn).__name__}", field=where)
        role = turn.get(role_key)
        content = turn.get(content_key)
        if not isinstance(role, str):
            raise loc.error("missing or not a string", field=f"{where}.{role_key}")
        if not isinstance(content, str):
            raise loc.error("missing or not a string", field=f"{where}.{content_key}")
        mapped = role_map.get(role.lower()) if role_map else role
        if mapped not in ("system", "user", "assistant"):
            raise loc.error(f"unknown role {role!r}", field=f"{where}.{role_key}")
        messages.append(Message(role=mapped, content=content))
    if not any(m.role == "user" for m in messages):
        raise loc.error("conversation has no user turn", field=field)
    return messages


def _messages(row: dict[str, Any], loc: Location) -> Example:
    messages = _turns(row.get("messages"), loc, "messages", "role", "content", None)
    fields: dict[str, Any] = {"id": _row_id(row, messages), "messages": messages}
    # rnr's own records carry these (JSON strings in Parquet/HF, where nested free-form data is awkward).
    try:
        for name, parse in (("system_prompt", SystemPrompt.model_validate),
                            ("verdicts", lambda v: [Verdict.model_validate(x) for x in v]),
                            ("metadata", dict)):
            value = row.get(name)
            if isinstance(value, str) and value:
                value = json.loads(value)
            if value:
                fields[name] = parse(value)
    except (ValidationError, json.JSONDecodeError, TypeError, ValueError) as error:
        raise loc.error(f"invalid rnr field ({str(error).splitlines()[0][:200]})", field=name) from None
    return Example(**fields)


def _sharegpt(row: dict[str, Any], loc: Location) -> Example:
    items = row.get("conversations")
    role_key = "from"
    if isinstance(items, list) and items and isinstance(items[0], dict) and "role" in items[0]:
        role_key = "role"
    content_key = "value" if role_key == "from" else "content"
    messages = _turns(items, loc, "conversations", role_key, content_key, _SHAREGPT_ROLES)
    if row.get("system") and messages[0].role != "system":
        messages.insert(0, Message(role="system", content=str(row["system"])))
    return Example(id=_row_id(row, messages), messages=messages)


def _ultrachat(row: dict[str, Any], loc: Location) -> Example:
    data = row.get("data")
    if not isinstance(data, list) or not data:
        raise loc.error("expected a non-empty list of alternating user/assistant turns", field="data")
    messages = []
    for i, turn in enumerate(data):
        if not isinstance(turn, str):
            raise loc.error(f"expected a string, got {type(turn).__name__}", field=f"data[{i}]")
        messages.append(Message(role="user" if i % 2 == 0 else "assistant", content=turn))
    return Example(id=_row_id(row, messages), messages=messages)


def _prompt(row: dict[str, Any], loc: Location) -> Example:
    prompt = _text(row, "prompt", loc)
    reply = row.get("response", row.get("completion"))
    messages = [Message(role="user", content=prompt)]
    if isinstance(reply, str) and reply.strip():
        messages.append(Message(role="assistant", content=reply))
    return Example(id=_row_id(row, messages), messages=messages)


NORMALISERS: dict[str, Callable[[dict[str, Any], Location], Example]] = {
    "messages": _messages,
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "ultrachat": _ultrachat,
    "self-instruct": _self_instruct,
    "prompt": _prompt,
}


def normalise(row: Any, loc: Location, fmt: str) -> Example:
    if not isinstance(row, dict):
        raise loc.error(f"expected a JSON object, got {type(row).__name__}")
    try:
        example = NORMALISERS[fmt](row, loc)
    except ValidationError as error:
        field, message = validation_problems(error)[0]
        raise loc.error(message, field=field or None) from None
    example.metadata.setdefault("source", {"path": loc.path, **({"line": loc.line} if loc.line else {"row": loc.row})})
    return example
