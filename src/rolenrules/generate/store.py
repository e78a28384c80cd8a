"""The run store: one SQLite file per generation run recording what is done, so a run killed at
any point (even `kill -9`) continues where it stopped, with nothing lost or duplicated.

Each finished unit of work is one committed row holding its typed outcome (`outcomes`): a system
prompt (or why it was dropped) per prompt index, and a kept, rejected or failed record per
conversation id, with what answering it tried (`trials`: every checked reply and the preference
pairs they make); the judge calibration's items; and every judge call's transcript. The final
output is rebuilt from these rows, so re-running a finished run writes nothing new. Each invocation's token usage is a row of its own, kept up to date as work is
committed, so the card counts every session of a resumed run.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rolenrules._sqlite import connect
from rolenrules.errors import ConfigError
from rolenrules.generate.outcomes import (Failure, Outcome, PromptDropped, PromptOutcome, Rejection, Status,
                                          Trials, status_of)
from rolenrules.records import Example, SystemPrompt, Usage

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (
    idx INTEGER PRIMARY KEY, status TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, prompt_idx INTEGER NOT NULL, position INTEGER NOT NULL,
    status TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, teacher TEXT NOT NULL, judge TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY, tries TEXT NOT NULL, pairs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calibration (idx INTEGER PRIMARY KEY, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transcripts (key TEXT PRIMARY KEY, unit TEXT NOT NULL, payload TEXT NOT NULL);
"""

_CONVERSATION_TYPES: dict[str, type[Example] | type[Rejection] | type[Failure]] = {
    Status.KEPT: Example, Status.REJECTED: Rejection, Status.FAILED: Failure}


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """`num_prompts: 1 -> 2; input content changed` — what differs between two run identities."""
    parts = []
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) == new.get(key):
            continue
        if key == "input_content":
            parts.append("the input's content changed")
        else:
            parts.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return "; ".join(parts) or "unknown differences"


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = connect(self.path)
        self._db.executescript(_TABLES)
        self.session = uuid.uuid4().hex[:12]

    # -- run identity ------------------------------------------------------------------------
    def claim(self, identity: dict[str, Any]) -> bool:
        """Bind the store to the options and inputs that decide the run's content. Returns True when
        resuming. A folder whose earlier attempt committed no work (an option error found late) is
        re-bound; one holding work of a different run is refused, naming what differs."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
            has_work = self._db.execute("SELECT EXISTS (SELECT 1 FROM prompts) OR EXISTS "
                                        "(SELECT 1 FROM conversations)").fetchone()[0]
            previous = json.loads(row[0]) if row else None
            if previous == identity:
                return True
            if previous is None and has_work:
                previous = {}  # written by an earlier version of rnr
            if previous is not None and has_work:
                raise ConfigError(
                    f"{self.path.parent}: this run folder holds a run made with different options or inputs "
                    f"({describe_changes(previous, identity) if previous else 'made by an earlier version of rnr'}); "
                    "run the command with the same options to resume it, use another --out/--run-dir, "
                    "or delete the folder to start over")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (json.dumps(identity),))
            return False

    @property
    def complete(self) -> bool:
        return self._get_meta("complete") == "1"

    def set_complete(self, complete: bool) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('complete', ?)", ("1" if complete else "0",))

    def _get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # -- system prompts ----------------------------------------------------------------------
    def put_prompt(self, idx: int, outcome: PromptOutcome) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO prompts VALUES (?, ?, ?)",
                             (idx, status_of(outcome).value, outcome.model_dump_json()))

    def prompts(self) -> dict[int, PromptOutcome]:
        with self._lock:
            rows = self._db.execute("SELECT idx, status, payload FROM prompts ORDER BY idx").fetchall()
        return {idx: SystemPrompt.model_validate_json(payload) if status == Status.KEPT
                else PromptDropped.model_validate_json(payload) for idx, status, payload in rows}

    # -- conversations -----------------------------------------------------------------------
    def finished_ids(self) -> set[str]:
        """Conversations finished for good (failed ones are retried on the next run)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM conversations WHERE status != ?", (Status.FAILED.value,))
            return {r[0] for r in rows}

    def put_conversation(self, prompt_idx: int, position: int, outcome: Outcome, trials: Trials | None = None,
                         transcripts: Sequence[dict[str, Any]] = ()) -> None:
        """The conversation's outcome and, in the same transaction, what answering it tried and its
        judge calls' transcripts (so they exist exactly when the conversation does)."""
        with self._lock, self._transaction():
            if trials is not None:
                self._db.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?)",
                                 (outcome.id, json.dumps(trials.tries), json.dumps(trials.pairs)))
            self._put_transcripts(outcome.id, transcripts)
            self._db.execute("INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?, ?)",
                             (outcome.id, prompt_idx, position, status_of(outcome).value, outcome.model_dump_json()))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _put_transcripts(self, unit: str, records: Sequence[dict[str, Any]]) -> None:
        # A call made again for the same unit, turn, attempt, sample, vote and kind replaces the earlier one.
        for record in records:
            key = json.dumps([unit, *(record.get(k) for k in ("kind", "turn", "attempt", "sample", "vote"))])
            self._db.execute("INSERT OR REPLACE INTO transcripts VALUES (?, ?, ?)", (key, unit, json.dumps(record)))

    def trials(self) -> dict[str, Trials]:
        """What answering each finished (kept or rejected) conversation tried, by conversation id."""
        with self._lock:
            rows = self._db.execute("SELECT t.id, t.tries, t.pairs FROM trials t JOIN conversations c ON c.id = t.id "
                                    "WHERE c.status != ? ORDER BY c.prompt_idx, c.position",
                                    (Status.FAILED.value,)).fetchall()
        return {id_: Trials(tries=json.loads(tries), pairs=json.loads(pairs)) for id_, tries, pairs in rows}

    # -- judge calibration and transcripts ---------------------------------------------------
    def put_calibration(self, idx: int, item: dict[str, Any], transcripts: Sequence[dict[str, Any]] = ()) -> None:
        with self._lock, self._transaction():
            self._put_transcripts(f"calibration-{idx}", transcripts)
            self._db.execute("INSERT OR REPLACE INTO calibration VALUES (?, ?)", (idx, json.dumps(item)))

    def calibration(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT idx, payload FROM calibration ORDER BY idx").fetchall()
        return {idx: json.loads(payload) for idx, payload in rows}

    def transcripts(self, units: set[str]) -> list[dict[str, Any]]:
        """The transcripts of these units, in the order they were recorded."""
        with self._lock:
            rows = self._db.execute("SELECT unit, payload FROM transcripts ORDER BY rowid").fetchall()
        return [json.loads(payload) for unit, payload in rows if unit in units]

    def get_meta(self, key: str) -> Any:
        value = self._get_meta(key)
        return json.loads(value) if value is not None else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def conversations(self, *statuses: Status) -> list[Outcome]:
        """Conversations of these statuses, in a stable order (prompt, then position)."""
        marks = ", ".join("?" for _ in statuses)
        with self._lock:
            rows = self._db.execute(f"SELECT status, payload FROM conversations WHERE status IN ({marks}) "
                                    "ORDER BY prompt_idx, position", [s.value for s in statuses]).fetchall()
        return [_CONVERSATION_TYPES[status].model_validate_json(payload) for status, payload in rows]

    def kept(self) -> list[Example]:
        return [o for o in self.conversations(Status.KEPT) if isinstance(o, Example)]

    def dropped(self) -> list[Rejection | Failure]:
        return [o for o in self.conversations(Status.REJECTED, Status.FAILED) if not isinstance(o, Example)]

    # -- usage -------------------------------------------------------------------------------
    def record_usage(self, teacher: Usage, judge: Usage) -> None:
        """This invocation's usage so far (replaces its earlier figure)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
                             (self.session, teacher.model_dump_json(), judge.model_dump_json()))

    def usage(self) -> tuple[Usage, Usage]:
        """(teacher, judge) usage summed over every invocation of this run."""
        with self._lock:
            rows = self._db.execute("SELECT teacher, judge FROM sessions").fetchall()
        teacher, judge = Usage(), Usage()
        for t, j in rows:
            teacher, judge = teacher.add(Usage.model_validate_json(t)), judge.add(Usage.model_validate_json(j))
        return teacher, judge

    def close(self) -> None:
        with self._lock:
            self._db.close()
