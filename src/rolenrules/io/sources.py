"""Raw rows from every container we read, each with where it came from (file and line or row).

JSONL (plain or `.jsonl.gz`) and Parquet are streamed (memory does not grow with the file); a JSON array is parsed
whole; a `datasets.save_to_disk` folder is memory-mapped by Arrow; `hf://owner/name[:split]`
streams from the hub when online and fails fast when not.
"""

from __future__ import annotations

import codecs
import errno
import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rolenrules.errors import DataError

HUB_PREFIX = "hf://"
TOO_DEEP = "JSON nested too deeply to read"


@dataclass(frozen=True)
class Location:
    path: str
    line: int | None = None
    row: int | None = None

    def error(self, message: str, field: str | None = None) -> DataError:
        return DataError(message, path=self.path, line=self.line, row=self.row, field=field)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else f"{self.path}: row {self.row}"


#: (where, the parsed row) — or (where, DataError) for a line that could not be parsed.
Row = tuple[Location, Any]


def container_of(path: str) -> str:
    """jsonl | json | parquet | hf-folder | hub, from the name (and, for folders, their content)."""
    if path.startswith(HUB_PREFIX):
        return "hub"
    p = Path(path)
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists() or (p / "state.json").exists():
            return "hf-folder"
        raise DataError("folder is not a datasets.save_to_disk folder (no dataset_info.json/state.json)", path=path)
    name = p.name.lower()
    for suffix, kind in ((".jsonl.gz", "jsonl"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    raise DataError("unknown file type: use .jsonl, .json, .parquet, a datasets folder or hf://owner/name", path=path)


def _check_readable(path: str) -> None:
    """A missing file, a symlink loop or a permission problem, each named, before any parsing."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DataError("symlink loop", path=path) from None
        if error.errno == errno.ENOENT:
            raise DataError("no such file or folder", path=path) from None
        raise DataError(f"cannot read ({error.strerror or error})", path=path) from None
    if Path(path).is_file() and not os.access(path, os.R_OK):
        raise DataError("cannot read (permission denied)", path=path)


def _open_error(path: str, error: OSError) -> DataError:
    return DataError(f"cannot read ({error.strerror or error})", path=path)


def iter_rows(path: str) -> Iterator[Row]:
    if not path.startswith(HUB_PREFIX):
        _check_readable(path)
    kind = container_of(path)
    if kind == "jsonl":
        yield from _jsonl(path)
    elif kind == "json":
        yield from _json(path)
    elif kind == "parquet":
        yield from _parquet(path)
    elif kind == "hf-folder":
        yield from _hf_folder(path)
    else:
        yield from _hub(path)


def _jsonl(path: str) -> Iterator[Row]:
    seen = False
    try:
        handle = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except OSError as error:
        raise _open_error(path, error) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            loc = Location(path, line=number)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):  # written by some Windows editors
                raw = raw[len(codecs.BOM_UTF8):]
            # A bad line is yielded as its error: the reader raises it, or skips it with --skip-invalid.
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                seen = True
                yield loc, loc.error(f"not valid UTF-8 (byte {error.start + 1} of the line)")
                continue
            if not text.strip():
                continue
            seen = True
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                yield loc, loc.error(f"malformed JSON ({error.msg} at column {error.colno})")
                continue
            except RecursionError:
                yield loc, loc.error(TOO_DEEP)
                continue
            yield loc, value
    if not seen:
        raise DataError("file is empty (no records)", path=path)


def jsonl_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; DataError names the line of bad
    UTF-8, bad JSON or a non-object, and an empty file."""
    for loc, value in _jsonl(str(path)):
        if isinstance(value, DataError):
            raise value
        if not isinstance(value, dict):
            raise loc.error("expected a JSON object")
        yield loc.line or 0, value


def object_rows(path: str | Path) -> Iterator[tuple[Location, dict[str, Any]]]:
    """(where, object) for each record of any container we read; a bad record raises its DataError."""
    for loc, value in iter_rows(str(path)):
        if isinstance(value, DataError):
            raise value
        if not isinstance(value, dict):
            raise loc.error("expected a JSON object")
        yield loc, value


def _json(path: str) -> Iterator[Row]:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise _open_error(path, error) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError("not valid UTF-8", path=path, line=line) from None
    if not text.strip():
        raise DataError("file is empty (no records)", path=path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"malformed JSON ({error.msg} at column {error.colno})", path=path, line=error.lineno) from None
    except RecursionError:
        raise DataError(TOO_DEEP, path=path) from None
    if isinstance(value, dict):
        # Some dumps wrap the rows: {"data": [...]} / {"rows": [...]}; a single object is one row.
        for key in ("data", "rows", "examples", "records"):
            if isinstance(value.get(key), list) and value[key] and isinstance(value[key][0], dict):
                value = value[key]
                break
        else:
            value = [value]
    if not isinstance(value, list):
        raise DataError("expected a JSON array of records (or use .jsonl)", path=path)
    if not value:
        raise DataError("file is empty (no records)", path=path)
    for index, item in enumerate(value, start=1):
        yield Location(path, row=index), item


def _parquet(path: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises ArrowInvalid/OSError for the same cause
        raise DataError(f"not a readable Parquet file ({str(error).splitlines()[0]})", path=path) from None
    if parquet.metadata.num_rows == 0:
        raise DataError("file is empty (no records)", path=path)
    index = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            index += 1
            yield Location(path, row=index), row


def _hf_folder(path: str) -> Iterator[Row]:
    import datasets

    try:
        data = datasets.load_from_disk(path)
    except Exception as error:
        raise DataError(f"cannot load datasets folder ({str(error).splitlines()[0]})", path=path) from None
    if isinstance(data, datasets.DatasetDict):
        split = "train" if "train" in data else next(iter(data))
        data = data[split]
    if len(data) == 0:
        raise DataError("dataset is empty (no records)", path=path)
    for index, row in enumerate(data, start=1):
        yield Location(path, row=index), row


def _hub(path: str) -> Iterator[Row]:
    spec = path[len(HUB_PREFIX):]
    name, _, split = spec.partition(":")
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") or os.environ.get("HF_DATASETS_OFFLINE") in ("1", "true"):
        raise DataError("the Hugging Face hub is disabled (HF_HUB_OFFLINE); save the dataset locally first", path=path)
    import datasets
    from huggingface_hub import HfApi

    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        # One quick request first: offline, `datasets` retries for about half a minute before giving up.
        HfApi().dataset_info(name, timeout=10)
        data = datasets.load_dataset(name, split=split or "train", streaming=True)
        for index, row in enumerate(data, start=1):
            yield Location(path, row=index), row
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"cannot load from the hub (offline or unknown dataset?): {str(error).splitlines()[0][:200]}",
                        path=path) from None
