"""Progress per stage: rich bars with rate, ETA, tokens and failures, or plain log lines (--quiet)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rolenrules.console import err_console
from rolenrules.records import Usage

log = logging.getLogger("rolenrules.generate")


class StageProgress:
    def __init__(self, quiet: bool, usage: Callable[[], Usage]) -> None:
        # Bars only on a terminal; redirected output (CI, nohup, files) gets log lines instead.
        self.quiet = quiet or not err_console.is_terminal
        self.usage = usage
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._name = ""
        self._total = 0
        self._done = 0
        self._initial = 0
        self._failed = 0
        self._start = 0.0
        self._last_log = 0.0

    def __enter__(self) -> StageProgress:
        if not self.quiet:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"), console=err_console, transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def stage(self, name: str, total: int, done: int = 0) -> None:
        self._name, self._total, self._done, self._failed, self._initial = name, total, done, 0, done
        self._start = time.monotonic()
        if self._progress is not None:
            self._task = self._progress.add_task(name, total=total, completed=done, rate="", extra="")
        else:
            log.info("%s: %d to do (%d already done)", name, total - done, done)

    def advance(self, failed: bool = False) -> None:
        self._done += 1
        self._failed += int(failed)
        elapsed = max(time.monotonic() - self._start, 1e-9)
        usage = self.usage()
        extra = f"{usage.total_tokens:,} tok · {usage.requests} req · {usage.cached_requests} cached · {self._failed} failed"
        if self._progress is not None and self._task is not None:
            rate = f"{(self._done - self._initial) / elapsed * 60:.1f}/min"
            self._progress.update(self._task, advance=1, rate=rate, extra=extra)
        elif time.monotonic() - self._last_log > 10 or self._done == self._total:
            self._last_log = time.monotonic()
            log.info("%s: %d/%d (%s)", self._name, self._done, self._total, extra)
