"""Progress on the terminal: a rich bar per stage with rate, ETA and the counts of each outcome
(kept / rejected / failed on a server error / unscored), fed by the library's progress callback.
Off a terminal (CI, nohup, a log file) or under --quiet, the library's log lines instead."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from rolenrules.cli._console import err_console
from rolenrules.generate.progress import Event, LogProgress, ProgressReporter, StageCounts


class RichProgress:
    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("{task.fields[extra]}"), console=err_console, transient=False)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._progress.stop()

    def __call__(self, event: Event, counts: StageCounts) -> None:
        usage = counts.usage
        extra = (f"kept {counts.kept} · rejected {counts.rejected} · failed (server) {counts.failed} · unscored "
                 f"{counts.unscored} · {usage.total_tokens:,} tok · {usage.requests} req ({usage.cached_requests} cached)")
        rate = counts.rate_per_min
        fields = {"rate": f"{rate:.1f}/min" if rate else "", "extra": extra}
        if event == "start" or counts.stage not in self._tasks:
            self._tasks[counts.stage] = self._progress.add_task(counts.stage, total=counts.total,
                                                                completed=counts.done, **fields)
        else:
            self._progress.update(self._tasks[counts.stage], completed=counts.done, **fields)


class _Logged:
    """The library's log lines, as a context manager like `RichProgress`."""

    def __init__(self) -> None:
        self.reporter = LogProgress()

    def __enter__(self) -> ProgressReporter:
        return self.reporter

    def __exit__(self, *exc: object) -> None:
        return None


def progress_display(quiet: bool) -> RichProgress | _Logged:
    """Bars on a terminal unless `quiet`; log lines (at least every ~10 s per stage) otherwise."""
    return _Logged() if quiet or not err_console.is_terminal else RichProgress()
