"""SQLite files shared by several writers (tasks, threads or processes) and safe after `kill -9`."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: str | Path) -> sqlite3.Connection:
    """Autocommit connection in WAL mode with a busy timeout: each statement is its own durable
    transaction, readers never block the writer, and a killed writer leaves a consistent file.
    Callers serialise use of the connection across threads with their own lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    return db
