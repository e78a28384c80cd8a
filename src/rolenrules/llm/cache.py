"""SQLite request cache: a repeated request is answered from disk with no network call.

The key is a hash of the backend identity (kind + model), the messages, the sampling parameters
and the output schema. Only successful, validated replies are stored. WAL mode and a busy timeout
make it safe for several writers (processes or tasks); SQLite's journal makes it safe after
`kill -9`. Nothing secret is stored: API keys are not part of a request.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

from rolenrules._sqlite import connect
from rolenrules.llm.base import ChatRequest, ChatResult
from rolenrules.records import Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(identity: str, request: ChatRequest) -> str:
    payload = {
        "identity": identity,
        "messages": [m.model_dump() for m in request.messages],
        "sampling": request.sampling.model_dump(),
        "schema": request.json_schema,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = connect(self.path)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, identity: str, request: ChatRequest) -> ChatResult | None:
        key = request_key(identity, request)
        with self._lock:
            row = self._db.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        text, finish, pt, ct = row
        return ChatResult(text=text, finish_reason=finish, cached=True,
                          usage=Usage(requests=1, prompt_tokens=pt, completion_tokens=ct))

    def put(self, identity: str, request: ChatRequest, result: ChatResult) -> None:
        key = request_key(identity, request)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, identity, result.text, result.finish_reason, result.usage.prompt_tokens,
                 result.usage.completion_tokens, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
