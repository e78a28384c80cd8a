"""JSON schema -> llama.cpp GBNF grammar for constrained decoding, bounded so a small model finishes.

The conversion itself is llama-cpp-python's (`json_schema_to_gbnf`, a port of llama.cpp's
`json_schema_to_grammar.py`; it resolves local `$defs`/`$ref`, enums, `minItems`/`maxItems`,
`minLength`/`maxLength`, optional keys and `additionalProperties: false`). Two things are added:

* Bounds where the schema gives none. A grammar keeps the JSON well-formed token by token but
  cannot make a 135M model stop: left alone it appends list items or keeps a string going until
  `max_tokens` and the reply is truncated (SmolLM2-135M, role + rules schema, 20 seeds, 400
  tokens: 10 of 20 truncated without bounds; benchmarks/local_engine.md). The bounds shape
  decoding only; replies are still validated against the caller's schema by pydantic, so a
  schema that sets its own bounds keeps them.
* Strings without raw control characters. The converter's `char` rule admits a literal newline
  inside a string, which is invalid JSON (pydantic rejects it); here they must be escaped.
"""

from __future__ import annotations

import copy
import json
from typing import Any

#: Defaults for arrays / strings the schema leaves unbounded (grammar only, not validation).
MAX_ITEMS = 16
MAX_STRING = 500
#: The converter writes a bound N as N nested optional groups; llama.cpp rejects a grammar past
#: about 1,000-2,000 of them, and a deep enough one overflows its parser's stack. Larger bounds
#: (the schema's or ours) are left out of the grammar: at that size they guard nothing here.
LARGEST_STRING_BOUND = 1000
LARGEST_ITEMS_BOUND = 100

_CONVERTER_CHAR_RULE = 'char ::= [^"\\\\] |'
_STRICT_CHAR_RULE = 'char ::= [^"\\\\\\x00-\\x1F] |'


class GrammarError(ValueError):
    """The schema uses something the converter cannot turn into a grammar."""


def bound_schema(schema: dict[str, Any], *, max_items: int | None = MAX_ITEMS,
                 max_string: int | None = MAX_STRING) -> dict[str, Any]:
    """A copy of `schema` where every array without `maxItems` and every free string without
    `maxLength` gets one (never below the schema's own minimum; None: add none), and bounds too
    large for a grammar are dropped."""
    bounded = copy.deepcopy(schema)
    _bound(bounded, max_items, max_string)
    return bounded


def _bound(node: Any, max_items: int | None, max_string: int | None) -> None:
    if isinstance(node, list):
        for item in node:
            _bound(item, max_items, max_string)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "array" and "items" in node:
        if "maxItems" not in node and max_items is not None:
            node["maxItems"] = max(max_items, int(node.get("minItems", 0)))
        if int(node.get("maxItems", 0)) > LARGEST_ITEMS_BOUND:
            del node["maxItems"]
    # Strings with a pattern, format, enum or const are already bounded by their own rule.
    if kind == "string" and not ({"pattern", "format", "enum", "const"} & node.keys()):
        if "maxLength" not in node and max_string is not None:
            node["maxLength"] = max(max_string, int(node.get("minLength", 0)))
        if int(node.get("maxLength", 0)) > LARGEST_STRING_BOUND:
            del node["maxLength"]
    for key, value in node.items():
        if key not in ("enum", "const", "default", "examples"):
            _bound(value, max_items, max_string)


def schema_to_gbnf(schema: dict[str, Any], *, max_items: int | None = MAX_ITEMS,
                   max_string: int | None = MAX_STRING) -> str:
    """The GBNF grammar (root rule `root`) for JSON matching `schema`, bounded as above."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        gbnf = json_schema_to_gbnf(json.dumps(bound_schema(schema, max_items=max_items, max_string=max_string)))
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise GrammarError(f"cannot build a grammar from this JSON schema: {error}") from None
    return strict_strings(gbnf)


def strict_strings(gbnf: str) -> str:
    """Forbid raw control characters inside JSON strings (they must be escaped)."""
    lines = gbnf.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(_CONVERTER_CHAR_RULE):
            lines[i] = _STRICT_CHAR_RULE + line[len(_CONVERTER_CHAR_RULE):]
    return "\n".join(lines)
