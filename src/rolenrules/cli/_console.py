"""The CLI's consoles (defined in `rolenrules.console`, which library code may use too)."""

from rolenrules.console import console, err_console

__all__ = ["console", "err_console", "quiet_datasets"]


def quiet_datasets(quiet: bool = False) -> None:
    """Turn off the `datasets` library's own tqdm bars under --quiet, and when stderr is not a
    terminal (they would fill a log file with carriage returns)."""
    if quiet or not err_console.is_terminal:
        from datasets import disable_progress_bars

        disable_progress_bars()
