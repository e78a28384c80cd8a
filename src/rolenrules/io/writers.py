"""Writing records: JSONL, Parquet or a `datasets` folder, chosen by the output's name.

Every writer writes to a temporary path beside the target and renames it into place only when
all records are written, so a failed run leaves no half-written output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rolenrules.errors import DataError
from rolenrules.records import Example

#: Nested free-form fields stored as JSON text in columnar outputs (Arrow needs one type per column).
JSON_COLUMNS = ("system_prompt", "verdicts", "metadata")


def output_kind(path: str | Path) -> str:
    name = str(path).lower().rstrip("/")
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".json"):
        raise DataError("write .jsonl (one record per line) rather than a .json array", path=str(path))
    return "hf-folder"


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path (for a file or a folder) next to `target`, renamed onto it when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    inner = tmp / "data"
    try:
        yield inner
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(inner, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def example_row(example: Example, *, columnar: bool) -> dict[str, Any]:
    row = example.model_dump(mode="json", exclude_none=False)
    if columnar:
        for key in JSON_COLUMNS:
            row[key] = json.dumps(row[key], ensure_ascii=False) if row[key] not in (None, [], {}) else None
    return row


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def _arrow_schema() -> Any:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([("id", pa.string()), ("messages", pa.list_(message)),
                      *[(k, pa.string()) for k in JSON_COLUMNS]])


def write_parquet(rows: Iterable[dict[str, Any]], path: str | Path, *, batch_size: int = 1000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()
    count = 0
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema)
        try:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                count += 1
                if len(batch) >= batch_size:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch or count == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        finally:
            writer.close()
    return count


def write_hf_folder(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    import datasets

    with tempfile.TemporaryDirectory(prefix="rnr-hf-") as scratch:
        parquet = Path(scratch) / "data.parquet"
        count = write_parquet(rows, parquet)
        data = datasets.Dataset.from_parquet(str(parquet), cache_dir=str(Path(scratch) / "cache"))
        with atomic_path(path) as tmp:
            data.save_to_disk(str(tmp))
    return count


def write_examples(examples: Iterable[Example], path: str | Path) -> int:
    """Write records to `path` (.jsonl, .parquet, or any other name: a datasets folder). Returns the count."""
    kind = output_kind(path)
    if kind == "jsonl":
        return write_jsonl((example_row(e, columnar=False) for e in examples), path)
    rows = (example_row(e, columnar=True) for e in examples)
    if kind == "parquet":
        return write_parquet(rows, path)
    return write_hf_folder(rows, path)
