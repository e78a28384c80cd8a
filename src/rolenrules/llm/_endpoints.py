"""Several servers of one model behind one backend: balancing, and benching the ones that fail.

Balancing is least-in-flight (ties broken round-robin): a faster or less busy server finishes
its requests sooner and so is handed more of them, and a server that slows down or stalls stops
receiving new work without any latency bookkeeping; plain round-robin would give every server the
same share and let the slowest set the pace of the run.

Health is a count of consecutive transport failures (connection errors, timeouts, 5xx) per
server. At `failures_to_bench` in a row a server is benched: it gets no new requests for
`bench_seconds`, doubled each time it is benched again (at most `max_bench_seconds`). When the
bench time is over it is tried again; one more failure benches it again at once, one success
restores it. With a single server nothing is ever benched (there is nowhere else to go); when
every server is benched, the one whose bench ends first is used anyway, so a run waits out an
outage through the usual retries instead of failing at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

log = logging.getLogger("rolenrules.llm")


@dataclass(eq=False)
class Endpoint:
    url: str
    index: int
    in_flight: int = 0
    served: int = 0
    failures: int = 0  # consecutive transport failures
    benched_until: float = 0.0
    times_benched: int = 0


class EndpointPool:
    def __init__(self, urls: Sequence[str], *, failures_to_bench: int = 3, bench_seconds: float = 15.0,
                 max_bench_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = [Endpoint(url, i) for i, url in enumerate(urls)]
        self.failures_to_bench = failures_to_bench
        self.bench_seconds = bench_seconds
        self.max_bench_seconds = max_bench_seconds
        self._clock = clock
        self._turn = 0

    def __len__(self) -> int:
        return len(self.endpoints)

    def healthy(self, endpoint: Endpoint, now: float | None = None) -> bool:
        return endpoint.benched_until <= (self._clock() if now is None else now)

    def pick(self, avoid: Collection[Endpoint] = ()) -> Endpoint:
        """The server for the next attempt: the healthy one with the fewest requests in flight,
        preferring servers not in `avoid` (those that already failed this request)."""
        if len(self.endpoints) == 1:
            return self.endpoints[0]
        now = self._clock()
        healthy = [e for e in self.endpoints if e.benched_until <= now]
        candidates = [e for e in healthy if e not in avoid] or healthy
        if not candidates:
            return min(self.endpoints, key=lambda e: e.benched_until)
        self._turn += 1
        n = len(self.endpoints)
        return min(candidates, key=lambda e: (e.in_flight, (e.index - self._turn) % n))

    def untried(self, tried: Collection[Endpoint]) -> bool:
        """Whether a healthy server that has not failed this request is left to fail over to."""
        now = self._clock()
        return any(e not in tried and e.benched_until <= now for e in self.endpoints)

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.served += 1
        if endpoint.times_benched and endpoint.failures:
            log.info("server %s answers again; back in rotation", endpoint.url)
            endpoint.times_benched = 0
        endpoint.failures = 0

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        """A transport failure on `endpoint` (connection error, timeout, 5xx)."""
        endpoint.failures += 1
        now = self._clock()
        if len(self.endpoints) == 1 or endpoint.failures < self.failures_to_bench or endpoint.benched_until > now:
            return
        seconds = min(self.bench_seconds * 2.0 ** endpoint.times_benched, self.max_bench_seconds)
        endpoint.benched_until = now + seconds
        endpoint.times_benched += 1
        log.warning("server %s failed %d times in a row (%s); no requests to it for %.0f s",
                    endpoint.url, endpoint.failures, reason, seconds)

    def benched(self) -> list[str]:
        now = self._clock()
        return [e.url for e in self.endpoints if e.benched_until > now]
