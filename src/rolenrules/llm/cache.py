"""SQLite request cache: a repeated request is answered from disk with no network call.

The key is a hash of the backend identity (kind + model, never the server URL: several servers of
one model share entries), the messages, the sampling parameters and the output schema. Only
successful, validated replies are stored. WAL mode and a busy timeout make it safe for several
writers (processes or tasks); SQLite's journal makes it safe after `kill -9`. Nothing secret is
stored: API keys are not part of a request.

Writes are batched: `put` keeps the row in memory (where `get` finds it) and commits many rows in
one transaction once 256 are waiting or 50 ms have passed since the oldest, and on `flush`/`close`
(`LLM` flushes whenever its last call in flight returns). A commit per reply cost ~70 us of CPU, a
fifth of a whole call (benchmarks/llm_transport.md). A process killed with rows still waiting loses
only those replies (they are asked again on resume), never the file's consistency.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from rolenrules._sqlite import connect
from rolenrules.llm._encode import json_string
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
_INSERT = "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)"
_BATCH_ROWS = 256
_BATCH_SECONDS = 0.05

_canonical = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode


def request_key(identity: str, request: ChatRequest) -> str:
    """sha256 of `json.dumps({"identity", "messages", "sampling", "schema"}, sort_keys=True,
    ensure_ascii=False)`, assembled from pieces so that a long message text already encoded for
    another request is not escaped again (the bytes, and so the keys, are the same as ever)."""
    messages = ", ".join(f'{{"content": {json_string(m.content)}, "role": {_canonical(m.role)}}}'
                         for m in request.messages)
    blob = (f'{{"identity": {_canonical(identity)}, "messages": [{messages}], '
            f'"sampling": {_canonical(request.sampling.model_dump())}, "schema": {_canonical(request.json_schema)}}}')
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _commit(db: Any, lock: threading.Lock, pending: dict[str, tuple[Any, ...]]) -> None:
    with lock:
        if not pending or db is None:
            return
        rows = list(pending.values())
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_INSERT, rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        pending.clear()


class RequestCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = connect(self.path)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._pending: dict[str, tuple[Any, ...]] = {}
        self._oldest = 0.0
        # Rows still waiting when the interpreter exits are committed then.
        self._finalizer = weakref.finalize(self, _commit, self._db, self._lock, self._pending)

    def get(self, identity: str, request: ChatRequest, *, key: str | None = None) -> ChatResult | None:
        """The stored reply, if any; `key` is `request_key(identity, request)` when the caller has it."""
        key = key or request_key(identity, request)
        with self._lock:
            row = self._pending.get(key)
            if row is not None:
                row = row[2:6]
            else:
                row = self._db.execute(
                    "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?", (key,)
                ).fetchone()
        if row is None:
            return None
        text, finish, pt, ct = row
        return ChatResult(text=text, finish_reason=finish, cached=True,
                          usage=Usage(requests=1, prompt_tokens=pt, completion_tokens=ct))

    def put(self, identity: str, request: ChatRequest, result: ChatResult, *, key: str | None = None) -> None:
        key = key or request_key(identity, request)
        now = time.time()
        with self._lock:
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending[key] = (key, identity, result.text, result.finish_reason, result.usage.prompt_tokens,
                                  result.usage.completion_tokens, now)
            due = len(self._pending) >= _BATCH_ROWS or time.monotonic() - self._oldest >= _BATCH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Commit the rows waiting in memory."""
        _commit(self._db, self._lock, self._pending)

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self.flush()
        self._finalizer.detach()
        with self._lock:
            self._db.close()
