"""`rnr tasks`: the built-in eval tasks, their data (bundled with rnr) and its licences."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rolenrules.cli._console import console


def _rows(data_dir: Path | None) -> list[dict[str, Any]]:
    from rolenrules.evaluate.bench import bench_rules
    from rolenrules.evaluate.tasks import TASKS, load_task

    rows = []
    for task in TASKS.values():
        examples = load_task(task.name, data_dir)
        kinds = Counter(rule.kind for example in examples for rule in bench_rules(example))
        rows.append({"name": task.name, "examples": len(examples), "rules": dict(sorted(kinds.items())),
                     "needs_judge": task.judge, "role_adherence": task.role, "summary": task.summary,
                     "licence": task.licence, "sources": [s.name for s in task.sources],
                     "description": task.description})
    return rows


def tasks_command(
    licences: Annotated[bool, typer.Option("--licences", help="Print the attribution and licence of each data source.")] = False,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Count the examples of your own copy of the data instead (default: $RNR_DATA_DIR, else the bundled data).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The built-in eval tasks (`rnr eval --task NAME`): examples, rules scored, judge, licence."""
    if licences:
        from rolenrules.evaluate.tasks import TASKS

        sources = dict.fromkeys(s for task in TASKS.values() for s in task.sources)
        for source in sources:
            notice, licence = source.texts()
            used_by = ", ".join(t.name for t in TASKS.values() if source in t.sources)
            console.rule(f"{source.name}: {source.licence} (tasks: {used_by})", style="bold")
            console.print(notice.rstrip() + "\n\n" + licence.rstrip() + "\n", markup=False, highlight=False)
        return
    rows = _rows(data_dir)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    from rich.table import Table

    table = Table(title="Built-in tasks (`rnr eval --task NAME`)", title_justify="left")
    for column in ("name", "examples", "rules scored", "needs judge", "licence"):
        table.add_column(column, justify="right" if column == "examples" else "left", no_wrap=column != "rules scored")
    for row in rows:
        rules = ", ".join(f"{count:,} {kind}" for kind, count in row["rules"].items())
        table.add_row(row["name"], f"{row['examples']:,}", rules, "yes" if row["needs_judge"] else "no", row["licence"])
    console.print(table)
    for row in rows:
        console.print(f"  {row['name']}: {row['description']}", highlight=False, markup=False)
    console.print("The data ships with rnr; `rnr tasks --licences` shows its sources and licences.", highlight=False,
                  markup=False)


def register(app: typer.Typer) -> None:
    app.command("tasks")(tasks_command)
