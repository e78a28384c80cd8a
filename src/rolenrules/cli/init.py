"""`rnr init [DIR]`: a ready local project — a quickstart generation config, an experiment for
`rnr run`, and a small seed sample — from the copies shipped in the package (`rolenrules/starter`),
so a pip install has the examples too."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer

from rolenrules.cli._console import console
from rolenrules.errors import ConfigError

#: What `rnr init` writes, relative to DIR, from the package's starter folder.
FILES = ("quickstart.yaml", "experiment.yaml", "data/seed_sample.jsonl")


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to write the project into (created if needed).")] = Path("."),
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Your own instruction data (any format `rnr data convert` reads) as the experiment's input "
                       "(default: the bundled 12-instruction sample).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace files of these names already in DIR.")] = False,
) -> None:
    """Write a ready local project: a quickstart config, an experiment for `rnr run` and a seed sample.

    quickstart.yaml runs `rnr generate` with the embedded model (offline, about 2 minutes);
    experiment.yaml runs generate, benchmark, LoRA training, evaluation and report with `rnr run`.
    Paths in both are relative to their folder."""
    input_path = "data/seed_sample.jsonl"
    if data is not None:
        from rolenrules.io import read_examples

        if not data.exists():
            raise ConfigError(f"--data {data}: no such file or folder")
        next(iter(read_examples(str(data))), None)  # a file rnr cannot read fails here, naming file, line and field
        input_path = str(data.resolve())
    existing = [name for name in FILES if (directory / name).exists()]
    if existing and not force:
        raise ConfigError(f"{directory} already has {', '.join(existing)}: pass --force to replace them, or give "
                          "another folder")
    starter = resources.files("rolenrules") / "starter"
    for name in FILES:
        text = (starter / name).read_text(encoding="utf-8")
        if name == "experiment.yaml":
            text = text.replace("{input}", json.dumps(input_path))
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    where = str(directory)
    console.print(f"wrote {', '.join(str(directory / n) for n in FILES)}\n"
                  f"next:\n  rnr generate --config {where}/quickstart.yaml            # about 2 minutes, offline\n"
                  f"  rnr generate --config {where}/quickstart.yaml --dry-run  # requests, tokens, cost first\n"
                  f"  rnr run {where}/experiment.yaml                         # the whole method",
                  highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
