"""`rnr run EXPERIMENT.yaml`: generate → bench → train → eval (base and tuned) → report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rolenrules.cli._console import err_console
from rolenrules.console import setup_logging


def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (see examples/experiment.yaml).")],
) -> None:
    """Run the whole RNR method; each stage resumes or is skipped when already complete."""
    from rolenrules.experiment import Experiment, load_experiment

    setup_logging()
    config = load_experiment(experiment)
    Experiment(config, echo=lambda text: err_console.print(text, markup=False, highlight=False)).run()


def register(app: typer.Typer) -> None:
    app.command("run")(run)
