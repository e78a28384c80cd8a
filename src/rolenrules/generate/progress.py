"""Progress of a generation run, reported through a callback (the library never prints).

Each stage (judge calibration, system prompts, conversations) counts its units by outcome: kept,
rejected (final, with a reason), failed (a server error; retried by the next run) and unscored
(finished with a rule nobody could check). The run calls the reporter when a stage starts, when a
unit finishes, every second while a stage is running (`tick`, so a reporter can show a heartbeat
even when no unit finishes for minutes) and when the stage ends.

`LogProgress`, the default, writes a line through the `rolenrules` logger when a stage starts and
ends and at least every `every` seconds in between; the CLI draws bars instead on a terminal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from rolenrules.records import Usage

log = logging.getLogger("rolenrules.generate")

Event = Literal["start", "advance", "tick", "end"]


@dataclass(frozen=True)
class StageCounts:
    """Where a stage stands. `done` counts units finished, those of earlier invocations included."""

    stage: str
    total: int
    done: int = 0
    #: Units already finished when this invocation started the stage.
    resumed: int = 0
    kept: int = 0
    rejected: int = 0
    failed: int = 0
    unscored: int = 0
    #: Units being worked on now, and the most at once during the stage (the run's window bounds both).
    in_flight: int = 0
    peak_in_flight: int = 0
    elapsed: float = 0.0
    usage: Usage = field(default_factory=Usage)

    @property
    def rate_per_min(self) -> float | None:
        """Units finished per minute by this invocation, or None before the first."""
        fresh = self.done - self.resumed
        return fresh / self.elapsed * 60 if fresh and self.elapsed > 0 else None

    def summary(self) -> str:
        """`12/40 · kept 9 · rejected 2 · failed (server) 1 · unscored 0 · 3.1/min · 12,345 tok`."""
        rate = self.rate_per_min
        return (f"{self.done}/{self.total} · kept {self.kept} · rejected {self.rejected} · failed (server) "
                f"{self.failed} · unscored {self.unscored}" + (f" · {rate:.1f}/min" if rate else "")
                + f" · {self.usage.total_tokens:,} tok · {self.usage.requests} req ({self.usage.cached_requests} cached)")


class ProgressReporter(Protocol):
    def __call__(self, event: Event, counts: StageCounts) -> None: ...


class LogProgress:
    """Log lines: a stage's start and end, and its counts at least every `every` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last = 0.0

    def __call__(self, event: Event, counts: StageCounts) -> None:
        now = time.monotonic()
        if event == "start":
            self._last = now
            log.info("%s: %d to do (%d already done)", counts.stage, counts.total - counts.done, counts.done)
        elif event == "end":
            log.info("%s: done: %s", counts.stage, counts.summary())
        elif now - self._last >= self.every:
            self._last = now
            log.info("%s: %s", counts.stage, counts.summary())


class StageTracker:
    """Counts one stage's outcomes and reports them."""

    def __init__(self, reporter: ProgressReporter, usage: Callable[[], Usage]) -> None:
        self.reporter = reporter
        self.usage = usage
        self.counts = StageCounts(stage="", total=0)
        self._start = time.monotonic()
        self.running = False

    def _snapshot(self, **changes: int) -> StageCounts:
        self.counts = replace(self.counts, elapsed=time.monotonic() - self._start, usage=self.usage(), **changes)
        return self.counts

    def start(self, stage: str, total: int, done: int = 0) -> None:
        self._start = time.monotonic()
        self.counts = StageCounts(stage=stage, total=total, done=done, resumed=done)
        self.running = True
        self.reporter("start", self._snapshot())

    def advance(self, outcome: Literal["kept", "rejected", "failed"], *, unscored: bool = False) -> None:
        c = self.counts
        self.reporter("advance", self._snapshot(done=c.done + 1, **{outcome: getattr(c, outcome) + 1},
                                                unscored=c.unscored + int(unscored)))

    def enter(self) -> None:
        """A unit was taken up (counted in `in_flight` until `leave`)."""
        c = self.counts
        self.counts = replace(c, in_flight=c.in_flight + 1, peak_in_flight=max(c.peak_in_flight, c.in_flight + 1))

    def leave(self) -> None:
        self.counts = replace(self.counts, in_flight=self.counts.in_flight - 1)

    def tick(self) -> None:
        if self.running:
            self.reporter("tick", self._snapshot())

    def end(self) -> None:
        if self.running:
            self.running = False
            self.reporter("end", self._snapshot())
