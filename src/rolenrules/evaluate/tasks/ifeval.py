"""IFEval-style tasks: each IFEval instruction becomes a verifiable rule (type = the IFEval id,
params = its kwargs). The original row is kept in `metadata.ifeval` so the official IFEval
summary (strict and loose) is written beside the pass-rate.
"""

from __future__ import annotations

from typing import Any

from rolenrules.errors import DataError
from rolenrules.evaluate.tasks.base import conversation, field
from rolenrules.io.sources import Location
from rolenrules.records import Example, Message, Rule

#: Report categories of IFEval's instruction groups (when the rule library gives none).
_IFEVAL_CATEGORY = {
    "change_case": "style", "combination": "format", "detectable_content": "content",
    "detectable_format": "format", "keywords": "content", "language": "language",
    "length_constraints": "length", "punctuation": "style", "startend": "format",
}


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


def _example(row: dict[str, Any], messages: list[Message], at: Location) -> Example:
    ids = field(row, "instruction_id_list", list, at)
    kwargs = field(row, "kwargs", list, at)
    key = row.get("key", at.line if at.line is not None else at.row)
    rules = ifeval_rules(ids, kwargs, where=str(at))
    meta = {"rules": [r.model_dump(mode="json") for r in rules],
            "ifeval": {"key": key, "prompt": row.get("prompt", messages[-1].content),
                       "instruction_id_list": ids, "kwargs": kwargs}}
    return Example(id=str(key), messages=messages, metadata=meta)


def user_turn(row: dict[str, Any], at: Location) -> Example:
    """IFEval's own rows: the prompt, constraints included, is the user turn."""
    prompt = field(row, "prompt", str, at)
    return _example(row, [Message(role="user", content=prompt)], at)


def system_message(row: dict[str, Any], at: Location) -> Example:
    """S-IFEval rows: `messages` with the constraints in the system message."""
    return _example(row, conversation(row, at), at)
