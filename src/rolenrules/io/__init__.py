"""Reading and writing datasets: every supported format in, `Example` records out; atomic writes.

    for example in read_examples("alpaca.json"):           # format detected from the first row
        ...
    write_examples(examples, "out.parquet")                 # .jsonl / .parquet / folder by name
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rolenrules.errors import DataError
from rolenrules.io.formats import FORMATS, detect_format, normalise
from rolenrules.io.sources import TOO_DEEP, Location, iter_rows
from rolenrules.io.writers import (OUTPUT_MARKER, atomic_path, check_writable, ensure_writable_output, output_kind,
                                   write_examples, write_jsonl, write_records)
from rolenrules.records import Example

__all__ = ["FORMATS", "OUTPUT_MARKER", "ReadStats", "atomic_path", "check_writable", "detect_format",
           "ensure_writable_output", "output_kind", "read_examples", "write_examples", "write_jsonl", "write_records",
           "Location"]


@dataclass
class ReadStats:
    """What a read did: rows read, skipped (with the first few reasons) and the detected format."""

    read: int = 0
    skipped: int = 0
    format: str | None = None
    reasons: list[str] = field(default_factory=list)

    def skip(self, error: DataError) -> None:
        self.skipped += 1
        if len(self.reasons) < 20:
            self.reasons.append(str(error))


def read_examples(path: str | Path, *, format: str | None = None, skip_invalid: bool = False,
                  stats: ReadStats | None = None) -> Iterator[Example]:
    """Stream `Example` records from a dataset file, folder or `hf://` id.

    Bad rows raise DataError naming file, line (or row) and field; with `skip_invalid` they are
    skipped and counted in `stats` instead. Malformed containers (broken JSON lines, bad UTF-8,
    empty files) always raise.
    """
    if format is not None and format not in FORMATS:
        raise DataError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}", path=str(path))
    stats = stats if stats is not None else ReadStats()
    fmt = format
    for loc, row in iter_rows(str(path)):
        try:
            if isinstance(row, DataError):
                raise row
            if fmt is None:
                fmt = detect_format(row, loc)
                stats.format = fmt
            try:
                example = normalise(row, loc, fmt)
            except RecursionError:
                raise loc.error(TOO_DEEP) from None
        except DataError as error:
            if not skip_invalid:
                raise
            stats.skip(error)
            continue
        stats.read += 1
        yield example
    stats.format = stats.format or fmt
