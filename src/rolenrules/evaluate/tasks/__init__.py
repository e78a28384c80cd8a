"""Built-in eval tasks: one `Task` record per task in `TASKS`, their data shipped in the package.

    examples = load_task("sys-ifeval", limit=50)            # the bundled data
    examples = load_task("realguardrails", data_dir="copy")  # a copy laid out like rolenrules/data/

Adding a task is one loader (a row of its data file -> an `Example`, in a module of this
package) plus one `Task(...)` entry below; the data file goes under `rolenrules/data/` with its
source's `LICENSE` and `NOTICE` (docs/extending.md walks through it). The CLI help, `rnr tasks`
and the scorer (role adherence) read this registry.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rolenrules.errors import ConfigError, DataError
from rolenrules.evaluate.tasks import guardrails, ifeval
from rolenrules.evaluate.tasks.base import Loader, Source, Task, bundled_data, data_path, resolve_data_dir
from rolenrules.io.sources import object_rows
from rolenrules.records import Example

IFEVAL = Source("IFEval (Zhou et al., 2023), Google Research",
                "https://github.com/google-research/google-research/tree/master/instruction_following_eval",
                "Apache-2.0", "ifeval")
SYSTEMCHECK = Source("SystemCheck / RealGuardrails (Mu et al., 2025)", "https://github.com/normster/SystemCheck",
                     "MIT", "systemcheck")

TASKS: dict[str, Task] = {task.name: task for task in (
    Task("ifeval", "the 540 IFEval prompts, constraints in the user turn, checked by code",
         "ifeval/input_data.jsonl", ifeval.user_turn, (IFEVAL,), role=False, judge=False, summary="ifeval"),
    Task("sys-ifeval", "the same constraints moved into the system message (S-IFEval), checked by code",
         "systemcheck/sys_ifeval.jsonl", ifeval.system_message, (SYSTEMCHECK, IFEVAL), role=False, judge=False,
         summary="ifeval"),
    Task("realguardrails", "handwritten cases over 27 real system prompts: guardrails judged, banlists checked",
         "systemcheck/handwritten.jsonl", guardrails.handwritten, (SYSTEMCHECK,), role=True, judge=True),
    Task("distractors", "RealGuardrails cases after roleplay or translation distractor turns, judged",
         "systemcheck/distractors.jsonl", guardrails.distractors, (SYSTEMCHECK,), role=True, judge=True),
)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)} (`rnr tasks` lists them)")
    return TASKS[name]


def has_role(task_name: str | None) -> bool:
    """Whether examples of this task have a role to judge (any task not in the registry has)."""
    task = TASKS.get(task_name or "")
    return task is None or task.role


def parse_task_arg(arg: str) -> tuple[str, str | None]:
    """`NAME` or `NAME=FILE_OR_HF_ID` (a task read from another copy of its data)."""
    name, _, source = arg.partition("=")
    get_task(name.strip())
    return name.strip(), source.strip() or None


def load_task(name: str, data_dir: str | Path | None = None, *, source: str | None = None,
              limit: int | None = None) -> list[Example]:
    """The benchmark examples of a built-in task (the first `limit`, in file order).

    Data: `source` (a file or `hf://owner/name[:split]` with the task's fields), else the task's
    file under `data_dir` or `$RNR_DATA_DIR`, else the data bundled with the package.
    """
    task = get_task(name)
    examples: list[Example] = []
    with data_path(task, data_dir, source) as path:
        for where, row in object_rows(path):
            example = task.loader(row, where)
            examples.append(example.model_copy(update={"id": f"{name}-{example.id}",
                                                       "metadata": {"task": name, **example.metadata}}))
            if limit is not None and len(examples) >= limit:
                break
    duplicate = next((i for i, c in Counter(e.id for e in examples).items() if c > 1), None)
    if duplicate is not None:
        raise DataError(f"example id {duplicate!r} appears more than once (results are keyed by id)", path=path)
    return examples


__all__ = ["IFEVAL", "SYSTEMCHECK", "TASKS", "Loader", "Source", "Task", "bundled_data", "get_task", "has_role",
           "load_task", "parse_task_arg", "resolve_data_dir"]
