"""The run store: one SQLite file per generation run recording what is done, so a run killed at
any point (even `kill -9`) continues where it stopped, with nothing lost or duplicated.

Each finished unit of work is one committed row holding its typed outcome (`outcomes`): a system
prompt (or why it was dropped) per prompt index, and a kept, rejected or failed record per
conversation id, with what answering it tried (`trials`: every checked reply and the preference
pairs they make); the judge calibration's items; and every judge call's transcript. The final
output is rebuilt from these rows, so re-running a finished run writes nothing new. Each invocation's
token usage is a row of its own, kept up to date as work is committed, so the card counts every
session of a resumed run. The run's seed records are copied here too (`put_seeds`), so a run reads
its input once and holds none of it in memory.

Writes of work are batched: `put_prompt`, `put_conversation` and `put_calibration` add to an open
transaction and `commit()` ends it (the pipeline commits every ~50 ms or 256 units). A unit of work
exists only once committed, and counts as done only then: a `kill -9` loses at most the uncommitted
batch, which the next run redoes (its requests answered by the request cache).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
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
CREATE TABLE IF NOT EXISTS seeds (idx INTEGER PRIMARY KEY, payload TEXT NOT NULL);
"""

#: A conversation row read back: (id, prompt index, position, status, the record as JSON, the
#: replies it tried and the pairs they made as JSON, or None).
ConversationRow = tuple[str, int, int, str, str, str | None, str | None]

_CONVERSATION_TYPES: dict[str, type[Example] | type[Rejection] | type[Failure]] = {
    Status.KEPT: Example, Status.REJECTED: Rejection, Status.FAILED: Failure}


def _prompt(status: str, payload: str) -> PromptOutcome:
    return SystemPrompt.model_validate_json(payload) if status == Status.KEPT else PromptDropped.model_validate_json(payload)


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
        # WAL with synchronous=NORMAL: a commit survives the process being killed at any point (kill -9);
        # only a power cut or an OS crash can take back the last few, which a re-run redoes. FULL would
        # fsync every batch.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_TABLES)
        self.session = uuid.uuid4().hex[:12]
        self._open = False  # a write transaction holds uncommitted work
        self._usage: tuple[Usage, Usage] | None = None

    # -- transactions --------------------------------------------------------------------------
    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Inside the open write transaction (begun here when none is). Hold `_lock`."""
        if not self._open:
            self._db.execute("BEGIN IMMEDIATE")
            self._open = True
        self._db.execute(sql, params)

    def commit(self) -> None:
        """Make every write so far durable, with this invocation's latest usage (`record_usage`)."""
        with self._lock:
            self._commit()

    def _commit(self) -> None:
        if self._usage is not None:
            teacher, judge = self._usage
            self._usage = None
            self._write("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
                        (self.session, teacher.model_dump_json(), judge.model_dump_json()))
        if self._open:
            self._open = False
            self._db.execute("COMMIT")

    def rollback(self) -> None:
        """Drop the uncommitted writes (work that must not count as done)."""
        with self._lock:
            if self._open:
                self._open = False
                self._db.execute("ROLLBACK")

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
            self._write("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (json.dumps(identity),))
            self._commit()
            return False

    def has_work(self) -> bool:
        """Whether any prompt or conversation was committed."""
        with self._lock:
            return bool(self._db.execute("SELECT EXISTS (SELECT 1 FROM prompts) OR EXISTS "
                                         "(SELECT 1 FROM conversations)").fetchone()[0])

    @property
    def complete(self) -> bool:
        return self._get_meta("complete") == "1"

    def set_complete(self, complete: bool) -> None:
        with self._lock:
            self._write("INSERT OR REPLACE INTO meta VALUES ('complete', ?)", ("1" if complete else "0",))
            self._commit()

    def _get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # -- system prompts ----------------------------------------------------------------------
    def put_prompt(self, idx: int, outcome: PromptOutcome) -> None:
        """Written with the next `commit()`."""
        with self._lock:
            self._write("INSERT OR REPLACE INTO prompts VALUES (?, ?, ?)",
                        (idx, status_of(outcome).value, outcome.model_dump_json()))

    def prompts(self) -> dict[int, PromptOutcome]:
        return dict(self.iter_prompts())

    def iter_prompts(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, PromptOutcome]]:
        """(index, outcome) of the prompts written so far, in index order (from `start` up to `stop`)."""
        with self._lock:
            rows = self._db.execute("SELECT idx, status, payload FROM prompts WHERE idx >= ? AND idx < ? ORDER BY idx",
                                    (start, stop if stop is not None else 2**62)).fetchall()
        for idx, status, payload in rows:
            yield idx, _prompt(status, payload)

    def prompt_statuses(self) -> dict[int, str]:
        """The status of each prompt written so far, by index (no records parsed)."""
        with self._lock:
            return dict(self._db.execute("SELECT idx, status FROM prompts"))

    def prompt(self, idx: int) -> PromptOutcome | None:
        with self._lock:
            row = self._db.execute("SELECT status, payload FROM prompts WHERE idx = ?", (idx,)).fetchone()
        return _prompt(*row) if row else None

    # -- conversations -----------------------------------------------------------------------
    def finished_ids(self) -> set[str]:
        """Conversations finished for good (failed ones are retried on the next run)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM conversations WHERE status != ?", (Status.FAILED.value,))
            return {r[0] for r in rows}

    def iter_finished(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, int]]:
        """(prompt index, position) of the conversations finished for good, in order, streamed."""
        query = ("SELECT prompt_idx, position FROM conversations WHERE status != ? AND prompt_idx >= ? "
                 "AND prompt_idx < ? ORDER BY prompt_idx, position")
        for idx, position in self._stream(query, (Status.FAILED.value, start, stop if stop is not None else 2**62)):
            yield idx, position

    def usage_with_shards(self, shards: Path) -> tuple[Usage, Usage]:
        """The run's (teacher, judge) usage plus that of every shard's run store under `shards`
        (a sharded run, `--executor ray`; none for a local run)."""
        teacher, judge = self.usage()
        for path in sorted(shards.glob("*/run.sqlite")):
            shard = RunStore(path)
            try:
                t, j = shard.usage()
            finally:
                shard.close()
            teacher, judge = teacher.add(t), judge.add(j)
        return teacher, judge

    def finished_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM conversations WHERE status != ?",
                                    (Status.FAILED.value,)).fetchone()[0]

    def put_conversation(self, prompt_idx: int, position: int, outcome: Outcome, trials: Trials | None = None,
                         transcripts: Sequence[dict[str, Any]] = ()) -> None:
        """The conversation's outcome and, in the same transaction, what answering it tried and its
        judge calls' transcripts (so they exist exactly when the conversation does). Written with
        the next `commit()`."""
        with self._lock:
            if trials is not None:
                self._write("INSERT OR REPLACE INTO trials VALUES (?, ?, ?)",
                            (outcome.id, json.dumps(trials.tries), json.dumps(trials.pairs)))
            self._put_transcripts(outcome.id, transcripts)
            self._write("INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?, ?)",
                        (outcome.id, prompt_idx, position, status_of(outcome).value, outcome.model_dump_json()))

    def _put_transcripts(self, unit: str, records: Sequence[dict[str, Any]]) -> None:
        # A call made again for the same unit, turn, attempt, sample, vote and kind replaces the earlier one.
        for record in records:
            key = json.dumps([unit, *(record.get(k) for k in ("kind", "turn", "attempt", "sample", "vote"))])
            self._write("INSERT OR REPLACE INTO transcripts VALUES (?, ?, ?)", (key, unit, json.dumps(record)))

    def trials(self) -> dict[str, Trials]:
        """What answering each finished (kept or rejected) conversation tried, by conversation id."""
        with self._lock:
            rows = self._db.execute("SELECT t.id, t.tries, t.pairs FROM trials t JOIN conversations c ON c.id = t.id "
                                    "WHERE c.status != ? ORDER BY c.prompt_idx, c.position",
                                    (Status.FAILED.value,)).fetchall()
        return {id_: Trials(tries=json.loads(tries), pairs=json.loads(pairs)) for id_, tries, pairs in rows}

    # -- judge calibration and transcripts ---------------------------------------------------
    def put_calibration(self, idx: int, item: dict[str, Any], transcripts: Sequence[dict[str, Any]] = ()) -> None:
        """Written with the next `commit()`."""
        with self._lock:
            self._put_transcripts(f"calibration-{idx}", transcripts)
            self._write("INSERT OR REPLACE INTO calibration VALUES (?, ?)", (idx, json.dumps(item)))

    def calibration(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT idx, payload FROM calibration ORDER BY idx").fetchall()
        return {idx: json.loads(payload) for idx, payload in rows}

    def transcripts(self, units: set[str]) -> list[dict[str, Any]]:
        """The transcripts of these units, in the order they were recorded."""
        with self._lock:
            rows = self._db.execute("SELECT unit, payload FROM transcripts ORDER BY rowid").fetchall()
        return [json.loads(payload) for unit, payload in rows if unit in units]

    def iter_transcripts(self) -> Iterator[tuple[str, str]]:
        """(unit, transcript as JSON) of every finished unit — a calibration item, or a kept or
        rejected conversation — in the order they were recorded, streamed."""
        query = ("SELECT t.unit, t.payload FROM transcripts t LEFT JOIN conversations c ON c.id = t.unit "
                 "WHERE (c.status IS NOT NULL AND c.status != ?) OR (c.status IS NULL AND t.unit IN "
                 "(SELECT 'calibration-' || idx FROM calibration)) ORDER BY t.rowid")
        yield from self._stream(query, (Status.FAILED.value,))

    def _stream(self, query: str, params: Sequence[Any] = (), size: int = 512) -> Iterator[Any]:
        # A cursor of its own, read in slices: writes on the shared connection may come in between.
        with self._lock:
            cursor = self._db.execute(query, params)
        while True:
            with self._lock:
                rows = cursor.fetchmany(size)
            if not rows:
                return
            yield from rows

    def get_meta(self, key: str) -> Any:
        value = self._get_meta(key)
        return json.loads(value) if value is not None else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
            self._commit()

    def conversations(self, *statuses: Status) -> list[Outcome]:
        """Conversations of these statuses, in a stable order (prompt, then position)."""
        marks = ", ".join("?" for _ in statuses)
        with self._lock:
            rows = self._db.execute(f"SELECT status, payload FROM conversations WHERE status IN ({marks}) "
                                    "ORDER BY prompt_idx, position", [s.value for s in statuses]).fetchall()
        return [_CONVERSATION_TYPES[status].model_validate_json(payload) for status, payload in rows]

    def iter_conversations(self, start: int = 0, stop: int | None = None) -> Iterator[ConversationRow]:
        """Every conversation with what answering it tried, in output order (prompt, then
        position), prompts `start` up to `stop`, streamed: records stay JSON text."""
        yield from self._stream(
            "SELECT c.id, c.prompt_idx, c.position, c.status, c.payload, t.tries, t.pairs FROM conversations c "
            "LEFT JOIN trials t ON t.id = c.id WHERE c.prompt_idx >= ? AND c.prompt_idx < ? "
            "ORDER BY c.prompt_idx, c.position", (start, stop if stop is not None else 2**62))

    def counts(self) -> dict[str, int]:
        """Conversations by status."""
        with self._lock:
            return dict(self._db.execute("SELECT status, COUNT(*) FROM conversations GROUP BY status"))

    def kept(self) -> list[Example]:
        return [o for o in self.conversations(Status.KEPT) if isinstance(o, Example)]

    def dropped(self) -> list[Rejection | Failure]:
        return [o for o in self.conversations(Status.REJECTED, Status.FAILED) if not isinstance(o, Example)]

    # -- usage -------------------------------------------------------------------------------
    def record_usage(self, teacher: Usage, judge: Usage) -> None:
        """This invocation's usage so far (replaces its earlier figure), written with the next `commit()`."""
        with self._lock:
            self._usage = (teacher, judge)

    def usage(self) -> tuple[Usage, Usage]:
        """(teacher, judge) usage summed over every invocation of this run."""
        with self._lock:
            if self._usage is not None:  # this invocation's latest figure, not committed yet
                teacher, judge = self._usage
                self._write("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
                            (self.session, teacher.model_dump_json(), judge.model_dump_json()))
            rows = self._db.execute("SELECT teacher, judge FROM sessions").fetchall()
        teacher, judge = Usage(), Usage()
        for t, j in rows:
            teacher, judge = teacher.add(Usage.model_validate_json(t)), judge.add(Usage.model_validate_json(j))
        return teacher, judge

    # -- seeds -----------------------------------------------------------------------------------
    def seed_count(self, digest: str) -> int | None:
        """How many seed records are stored for an input of this content (None: none yet)."""
        stored = self.get_meta("seeds")
        return stored["count"] if stored and stored.get("digest") == digest else None

    def put_seeds(self, seeds: Iterable[Example], digest: str) -> int:
        """Copy the seed records in (replacing any of another input), in batches; returns the count."""
        count = 0
        with self._lock:
            self._write("DELETE FROM seeds")
            self._write("DELETE FROM meta WHERE key = 'seeds'")
            batch: list[tuple[int, str]] = []
            for example in seeds:
                batch.append((count, example.model_dump_json()))
                count += 1
                if len(batch) >= 2000:
                    self._db.executemany("INSERT INTO seeds VALUES (?, ?)", batch)
                    batch = []
            self._db.executemany("INSERT INTO seeds VALUES (?, ?)", batch)
            self._write("INSERT OR REPLACE INTO meta VALUES ('seeds', ?)", (json.dumps({"digest": digest, "count": count}),))
            self._commit()
        return count

    def seed(self, idx: int) -> Example:
        with self._lock:
            row = self._db.execute("SELECT payload FROM seeds WHERE idx = ?", (idx,)).fetchone()
        if row is None:
            raise IndexError(idx)
        return Example.model_validate_json(row[0])

    def iter_seeds(self) -> Iterator[Example]:
        for (payload,) in self._stream("SELECT payload FROM seeds ORDER BY idx"):
            yield Example.model_validate_json(payload)

    def close(self) -> None:
        with self._lock:
            if self._open or self._usage is not None:
                self._commit()  # what is pending is finished work
            self._db.close()
