"""The CLI's consoles (defined in `rolenrules.console`, which library code may use too)."""

import os
import sys

from rolenrules.console import console, err_console

__all__ = ["console", "err_console", "quiet_datasets"]


def quiet_datasets(quiet: bool = False) -> None:
    """Turn off the `datasets` library's own tqdm bars under --quiet, and when stderr is not a
    terminal (they would fill a log file with carriage returns). `datasets` reads the setting when
    it is imported: importing it here just to turn its bars off would cost half a second of start-up
    to every command, most of which never use it."""
    if quiet or not err_console.is_terminal:
        if "datasets" in sys.modules:
            from datasets import disable_progress_bars

            disable_progress_bars()
        else:
            os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
