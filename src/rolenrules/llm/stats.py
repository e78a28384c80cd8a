"""What a client's calls cost: throughput, and time waiting on servers versus time in this process."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CallStats:
    """Counters of one `LLM` client (`LLM.stats()`).

    `wall_s` is the time during which at least one call of the client was in progress;
    `server_s` adds up the time each request spent inside the backend (sending, the server's
    work, receiving; overlapping requests each count, so `server_s / wall_s` is the mean number in
    flight); `cpu_s` is this process's CPU time during `wall_s` (all threads). `cpu_s / wall_s`
    near 1 (per core used) means the client is the limit; near 0, the servers are.
    """

    requests: int = 0  # replies from the backend
    cached: int = 0  # replies from the request cache
    failed: int = 0  # calls that raised after every retry
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    server_s: float = 0.0
    cpu_s: float = 0.0

    def __add__(self, other: CallStats) -> CallStats:
        """Stats of clients used side by side in one run (teacher and judge): counts add up; wall
        and CPU time, spent over the same span, are the larger of the two."""
        return CallStats(
            requests=self.requests + other.requests, cached=self.cached + other.cached,
            failed=self.failed + other.failed, prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            wall_s=max(self.wall_s, other.wall_s), server_s=self.server_s + other.server_s,
            cpu_s=max(self.cpu_s, other.cpu_s))

    @property
    def calls_per_s(self) -> float | None:
        return self.requests / self.wall_s if self.wall_s > 0 else None

    @property
    def tokens_per_s(self) -> float | None:
        """Completion tokens per second of wall time."""
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else None

    @property
    def latency_s(self) -> float | None:
        """Mean time of one request inside the backend."""
        return self.server_s / self.requests if self.requests else None

    @property
    def in_flight(self) -> float | None:
        """Mean number of requests in flight while the client was active."""
        return self.server_s / self.wall_s if self.wall_s > 0 else None

    @property
    def client_busy(self) -> float | None:
        """This process's CPU time as a share of the wall time (can pass 1 with several threads)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else None

    def summary(self) -> str:
        """One line, e.g. for the end of a run: `1,204 calls (96 cached) in 4.1 s: 293.7 calls/s, 8,812
        tokens/s; 0.21 s per call at the servers, 61.0 in flight; client CPU 38% of the time`."""
        head = f"{self.requests:,} calls" + (f" ({self.cached:,} cached)" if self.cached else "")
        head += f", {self.failed:,} failed" if self.failed else ""
        if not self.wall_s:
            return head
        parts = [f"{head} in {self.wall_s:.1f} s: {self.calls_per_s:,.1f} calls/s, {self.tokens_per_s:,.0f} tokens/s"]
        if self.requests:
            parts.append(f"{self.latency_s:.2f} s per call at the servers, {self.in_flight:.1f} in flight")
        parts.append(f"client CPU {self.client_busy:.0%} of the time")
        return "; ".join(parts)
