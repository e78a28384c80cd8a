"""JSON string literals for message texts, remembered for long texts.

A generation run sends the same long system prompt (and judge instructions) with many requests,
and each request encodes it twice: for the request-cache key and for the HTTP body. Escaping a
1.6 KB prompt costs ~6 us each time; looking up the finished literal costs ~0.5 us (hashing a new
string object once). Short texts are encoded directly: for them the lookup saves nothing.
"""

from __future__ import annotations

import json

_encode = json.JSONEncoder(ensure_ascii=False).encode
_LONG = 256
_LIMIT = 1024
_memo: dict[str, str] = {}


def json_string(text: str) -> str:
    """`json.dumps(text, ensure_ascii=False)`, memoised for long texts."""
    if len(text) < _LONG:
        return _encode(text)
    literal = _memo.get(text)
    if literal is None:
        if len(_memo) >= _LIMIT:
            _memo.clear()  # a run's prompts change slowly; starting over is cheaper than LRU bookkeeping
        literal = _memo[text] = _encode(text)
    return literal
