"""The run store: one SQLite file per generation run recording what is done, so a run killed at
any point (even `kill -9`) continues where it stopped, with nothing lost or duplicated.

Each finished unit of work is one committed row: a system prompt (or its rejection) per prompt
index, and a kept or rejected record per conversation id. The final output is rebuilt from
these rows, so re-running a finished run writes nothing new.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rolenrules._sqlite import connect
from rolenrules.errors import ConfigError

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (
    idx INTEGER PRIMARY KEY, status TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, prompt_idx INTEGER NOT NULL, position INTEGER NOT NULL,
    status TEXT NOT NULL, payload TEXT NOT NULL);
"""


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = connect(self.path)
        self._db.executescript(_TABLES)

    # -- run identity ------------------------------------------------------------------------
    def claim(self, fingerprint: str) -> bool:
        """Bind the store to a config fingerprint. Returns True when resuming an existing run."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fingerprint,))
                return False
        if row[0] != fingerprint:
            raise ConfigError(f"{self.path.parent}: this run folder holds a run made with different options; "
                              "use another --out/--run-dir, or delete the folder to start over")
        return True

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- system prompts ----------------------------------------------------------------------
    def prompt(self, idx: int) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            row = self._db.execute("SELECT status, payload FROM prompts WHERE idx = ?", (idx,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def put_prompt(self, idx: int, status: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO prompts VALUES (?, ?, ?)", (idx, status, json.dumps(payload)))

    def prompts(self) -> list[tuple[int, str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT idx, status, payload FROM prompts ORDER BY idx").fetchall()
        return [(i, s, json.loads(p)) for i, s, p in rows]

    # -- conversations -----------------------------------------------------------------------
    def done_ids(self) -> set[str]:
        """Conversations finished for good ('failed' ones are retried on resume)."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM conversations WHERE status != 'failed'")}

    def put_conversation(self, cid: str, prompt_idx: int, position: int, status: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?, ?)",
                             (cid, prompt_idx, position, status, json.dumps(payload, ensure_ascii=False)))

    def conversations(self, *statuses: str) -> list[dict[str, Any]]:
        """Conversations of these statuses ('kept', 'rejected' = final, 'failed' = retried on
        resume), in a stable order."""
        marks = ", ".join("?" for _ in statuses)
        with self._lock:
            rows = self._db.execute(f"SELECT payload FROM conversations WHERE status IN ({marks}) "
                                    "ORDER BY prompt_idx, position", statuses).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
