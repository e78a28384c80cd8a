"""The `Task` record, where a task's data lives, and helpers for loaders.

A task's data is one file under a data folder laid out like the bundled `rolenrules/data/`
(`ifeval/input_data.jsonl`, `systemcheck/…`); a file may be stored as `NAME.gz` instead.
The folder is the package's own data (read with `importlib.resources`, so it works from any
working directory and from an installed wheel), or a user's copy (`--data-dir`, `$RNR_DATA_DIR`).
One task can also be read from any file or `hf://` dataset with the same fields.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from rolenrules.errors import ConfigError
from rolenrules.evaluate.bench import final_user_prefix
from rolenrules.io.sources import Location
from rolenrules.records import Example, Message

#: A loader turns one row of a task's file (with where it is) into a benchmark `Example`. The
#: example's `id` is unique within the task; `load_task` prefixes it with the task name and sets
#: `metadata.task`. Rules go to `metadata.rules` (or a structured `system_prompt`).
Loader = Callable[[dict[str, Any], Location], Example]


@dataclass(frozen=True)
class Source:
    """Where a task's data comes from; its folder in the data holds `LICENSE` and `NOTICE`."""

    name: str
    url: str
    licence: str  # SPDX id
    folder: str

    def texts(self) -> tuple[str, str]:
        """(attribution and changes, licence text), as shipped in the package."""
        folder = bundled_data().joinpath(self.folder)
        notice, licence = (folder.joinpath(name).read_text(encoding="utf-8") for name in ("NOTICE", "LICENSE"))
        return notice, licence


@dataclass(frozen=True)
class Task:
    """A built-in eval task: everything `rnr eval --task`, `rnr tasks` and the scorer need to know."""

    name: str
    description: str
    #: The data file, relative to the data folder (`FILE.gz` is found too).
    file: str
    loader: Loader
    sources: tuple[Source, ...]
    #: The system message is a role to judge for role adherence (not a bare list of constraints).
    role: bool
    #: Needs a judge: some rules are judged, or role adherence is.
    judge: bool
    #: Extra official figures written to `summary.json` (`ifeval`: IFEval's strict/loose accuracies,
    #: from the `metadata.ifeval` the loader keeps).
    summary: Literal["ifeval"] | None = None

    @property
    def licence(self) -> str:
        return " AND ".join(dict.fromkeys(s.licence for s in self.sources))


def bundled_data() -> Traversable:
    """The data folder shipped inside the package."""
    return files("rolenrules").joinpath("data")


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """`data_dir`, else `$RNR_DATA_DIR`, else None (the bundled data)."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("RNR_DATA_DIR")
    return Path(env) if env else None


def _bundled_file(relative: str) -> Traversable | None:
    for name in (relative, relative + ".gz"):
        resource = bundled_data().joinpath(*name.split("/"))
        if resource.is_file():
            return resource
    return None


@contextmanager
def data_path(task: Task, data_dir: str | Path | None = None, source: str | None = None) -> Iterator[str]:
    """The file (or `hf://` id) to read `task` from: `source`, else the data folder's copy."""
    if source is not None:
        yield source
        return
    root = resolve_data_dir(data_dir)
    if root is not None:
        for name in (task.file, task.file + ".gz"):
            if (root / name).is_file():
                yield str(root / name)
                return
        raise ConfigError(f"task {task.name}: {task.file} not found under the data folder {root} (from "
                          f"{'--data-dir' if data_dir is not None else '$RNR_DATA_DIR'}); without one, "
                          "the data bundled with rolenrules is used")
    resource = _bundled_file(task.file)
    if resource is None:
        raise ConfigError(f"task {task.name}: the data bundled with rolenrules is missing ({task.file}): the "
                          "installation is broken; reinstall rolenrules, or pass --data-dir DIR")
    with as_file(resource) as path:  # a real file already, unless the package is imported from a zip
        yield str(path)


# -- helpers for loaders ----------------------------------------------------------------------


def field(row: dict[str, Any], name: str, kind: type, at: Location) -> Any:
    """`row[name]`, which must be a `kind`; else a DataError naming file, line and field."""
    value = row.get(name)
    if not isinstance(value, kind):
        raise at.error(f"missing or not a {kind.__name__}", field=name)
    return value


def conversation(row: dict[str, Any], at: Location) -> list[Message]:
    """`row["messages"]` up to and including its last user turn."""
    raw = field(row, "messages", list, at)
    try:
        return final_user_prefix([Message(role=m["role"], content=m["content"]) for m in raw])
    except (KeyError, TypeError, ValueError) as error:
        raise at.error(f"bad conversation ({error})", field="messages") from None


def row_number(at: Location) -> int:
    """The line (JSONL) or row (Parquet, hub) of a record: an id for rows that carry none."""
    return at.line if at.line is not None else at.row or 0


__all__ = ["Loader", "Source", "Task", "bundled_data", "conversation", "data_path", "field", "resolve_data_dir",
           "row_number"]
