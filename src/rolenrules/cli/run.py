"""`rnr run EXPERIMENT.yaml`: generate → bench → eval of the base → train and eval each arm → report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rolenrules.cli._console import err_console
from rolenrules.console import setup_logging

_STAGES = ("generate, bench, eval-base, then per arm train-ARM and eval-ARM (train and eval-tuned without `arms:`), "
           "report")


def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (see examples/experiment.yaml).")],
    force: Annotated[Optional[list[str]], typer.Option(
        "--force", metavar="STAGE", help=f"Redo this stage (repeatable), and the stages that read its output: {_STAGES}.")] = None,
    start: Annotated[Optional[str], typer.Option(
        "--from", metavar="STAGE", help="Redo this stage and every stage after it.")] = None,
    until: Annotated[Optional[str], typer.Option(
        "--until", metavar="STAGE", help="Stop after this stage (e.g. bench: look at the data before training).")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", metavar="NAME=VALUE", help="Set a param the file declares under `params:` and uses as {NAME} "
                                              "(repeatable), e.g. --param seeds=alpaca.json.")] = None,
) -> None:
    """Run the whole RNR method: data, a held-out benchmark, the base model and each trained arm
    evaluated on it (and on built-in tasks), one report. A stage is skipped when it is complete and
    made from the same options and inputs; a stage whose options changed is refused until you ask
    for it again."""
    from rolenrules.experiment import Experiment, load_experiment

    from rolenrules.errors import ConfigError

    params: dict[str, str] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param {item!r}: expected NAME=VALUE")
        params[name.strip()] = value.strip()
    config = load_experiment(experiment, params)
    setup_logging()
    Experiment(config, echo=lambda text: err_console.print(text, markup=False, highlight=False),
               name=str(experiment)).run(force=force or (), start=start, until=until)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
