"""Writing records: JSONL, Parquet or a `datasets` folder, chosen by the output's name.

Every writer writes to a temporary path beside the target and renames it into place only when
all records are written, so a failed run leaves no half-written output.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError, DataError
from rolenrules import __version__
from rolenrules.records import Example

#: Nested free-form fields stored as JSON text in columnar outputs (Arrow needs one type per column).
JSON_COLUMNS = ("system_prompt", "verdicts", "metadata")


#: What an output may be, said once for help texts and errors.
OUTPUTS = ".jsonl, .parquet, or a folder (a name without a suffix, or ending in /) for datasets.save_to_disk"


def output_kind(path: str | Path) -> str:
    """What `path` is written as: "jsonl", "parquet" or "hf-folder" (a `datasets` folder). A name with
    another suffix (x.csv) is refused rather than silently made into a folder of that name."""
    text = str(path)
    name = text.lower().rstrip("/")
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".json"):
        raise DataError("write .jsonl (one record per line) rather than a .json array", path=text)
    suffix = Path(name).suffix
    if suffix and not text.endswith(("/", os.sep)) and not Path(text).is_dir():
        raise DataError(f"cannot write {suffix} files; write {OUTPUTS}", path=text)
    return "hf-folder"


#: A file rnr puts in every folder it writes (a `datasets` folder output). Only a folder carrying
#: it, or an empty one, is ever replaced: anything else in its place is the user's.
OUTPUT_MARKER = ".rnr-output"

_TMP_NAME = re.compile(r"^(?:(\d+)\.[A-Za-z0-9_]+|[A-Za-z0-9_]{8})\.tmp$")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve(strict=False)
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise ConfigError(f"{path}: symlink loop") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ConfigError(f"{path}: symlink loop") from None
        raise


def is_rnr_folder(path: Path) -> bool:
    """An existing folder rnr may replace: one it wrote (it carries the marker) or an empty one."""
    return (path / OUTPUT_MARKER).is_file() or not any(path.iterdir())


def _protected(path: Path) -> str | None:
    resolved = _resolved(path)
    cwd = Path.cwd().resolve()
    places = [("the current folder", cwd), ("the parent folder", cwd.parent), ("the root folder", Path(resolved.anchor))]
    try:
        places.append(("your home folder", Path.home().resolve()))
    except RuntimeError:  # no HOME: nothing to protect under that name
        pass
    for name, place in places:
        if resolved == place:
            return name
    return None


def ensure_writable_output(path: str | Path, *, inputs: Iterable[str | Path] = (), folder: bool | None = None,
                 what: str = "output") -> None:
    """Refuse, before any work is done, an output that would destroy something rnr did not write
    or cannot be written at all: `.`, `..`, the home folder, an input or a folder holding one, a
    folder rnr did not write, a file where a folder is needed (and the reverse), an unwritable place.

    `folder`: True when the output is a folder, False when a file, None to infer it from the name.
    """
    if folder is None:
        folder = output_kind(path) == "hf-folder"  # before Path(): a trailing "/" says "a folder"
    path = Path(path)
    target = _resolved(path)
    place = _protected(path)
    if place is not None:
        raise ConfigError(f"{what} {path} is {place}: refusing to write over it; give a new name")
    for source in inputs:
        if str(source).startswith("hf://"):
            continue
        source_path = _resolved(Path(source))
        if source_path == target:
            raise ConfigError(f"{what} {path} is the input {source}: give another name")
        if target in source_path.parents:
            raise ConfigError(f"{what} {path} holds the input {source}: refusing to replace it; give a new name")
    if target.is_dir():
        if not folder:
            raise ConfigError(f"{what} {path} is an existing folder; give a file name")
        if not is_rnr_folder(target):
            raise ConfigError(f"{what} {path} is a folder rnr did not write (no {OUTPUT_MARKER} in it): "
                              "refusing to replace it; give a new name, or remove it yourself")
    elif target.exists() and folder:
        raise ConfigError(f"{what} {path} is an existing file where a folder is needed; give a folder name")
    check_writable(target.parent, what=f"{what} {path}")


def check_writable(folder: str | Path, *, what: str = "output") -> None:
    """The nearest existing ancestor of `folder` is a folder we may create entries in."""
    here = Path(folder)
    while not here.exists():
        if here.is_symlink():
            raise ConfigError(f"{what}: {here} is a broken link or a symlink loop")
        here = here.parent
    if not here.is_dir():
        raise ConfigError(f"{what}: {here} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: cannot write in {here} (permission denied)")


def _clean_leftovers(target: Path) -> None:
    """Remove `.NAME.*.tmp` folders that a killed write of `target` left behind (their process is gone)."""
    prefix = f".{target.name}."
    for entry in target.parent.glob(glob.escape(prefix) + "*.tmp"):
        match = _TMP_NAME.match(entry.name[len(prefix):])
        if not match or not entry.is_dir():
            continue
        pid = match.group(1)
        if pid is not None and _alive(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path (for a file or a folder) next to `target`, renamed onto it when the block
    succeeds. A folder written this way carries `OUTPUT_MARKER`; an existing folder at `target` is
    replaced only when it carries one (rnr wrote it) or is empty."""
    target = Path(target)
    if target.is_dir() and not target.is_symlink() and not is_rnr_folder(target):
        raise ConfigError(f"{target} is a folder rnr did not write (no {OUTPUT_MARKER} in it): refusing to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    inner = tmp / "data"
    try:
        yield inner
        if inner.is_dir():  # a folder we wrote says so, so a later write may replace it
            (inner / OUTPUT_MARKER).write_text(f"written by rnr {__version__}\n", encoding="utf-8")
        if target.is_dir() and not target.is_symlink():
            if not inner.is_dir():
                raise ConfigError(f"{target} is an existing folder; give a file name")
            os.replace(target, tmp / "replaced")  # out of the way first, removed with the temp folder
        elif target.exists() and inner.is_dir():
            raise ConfigError(f"{target} is an existing file where a folder is needed")
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
        if count:
            data = datasets.Dataset.from_parquet(str(parquet), cache_dir=str(Path(scratch) / "cache"))
        else:  # from_parquet cannot read an empty file; an empty folder still needs its one (empty) shard
            data = datasets.Dataset.from_dict({name: [] for name in _arrow_schema().names},
                                              features=datasets.Features.from_arrow_schema(_arrow_schema()))
        with atomic_path(path) as tmp:
            data.save_to_disk(str(tmp), num_shards=1 if not count else None)
    return count


def write_records(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    """`write_examples` for records already in their JSON form (`Example.model_dump(mode="json")`, as a
    run store holds them): no model is built per record."""
    kind = output_kind(path)
    if kind == "jsonl":
        return write_jsonl(rows, path)
    columnar = (_columnar(row) for row in rows)
    if kind == "parquet":
        return write_parquet(columnar, path)
    return write_hf_folder(columnar, path)


def _columnar(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    for key in JSON_COLUMNS:
        value = row.get(key)
        row[key] = json.dumps(value, ensure_ascii=False) if value not in (None, [], {}) else None
    return row


def write_examples(examples: Iterable[Example], path: str | Path) -> int:
    """Write records to `path` (.jsonl, .parquet, or a name without a suffix or ending in "/": a datasets
    folder). Returns the count."""
    kind = output_kind(path)
    if kind == "jsonl":
        return write_jsonl((example_row(e, columnar=False) for e in examples), path)
    rows = (example_row(e, columnar=True) for e in examples)
    if kind == "parquet":
        return write_parquet(rows, path)
    return write_hf_folder(rows, path)
