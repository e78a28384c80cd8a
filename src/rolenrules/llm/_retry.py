"""When to retry an HTTP request to an OpenAI-compatible server, and how long to wait first.

The rules are the openai SDK's (`openai._base_client`), so the direct transport behaves as the
SDK does: retry timeouts, connection errors, 408, 409, 429 and 5xx; obey `x-should-retry`; wait
`Retry-After-Ms` or `Retry-After` (seconds or an HTTP date) when the server gives 0 < wait <= 2
minutes, never retry when it asks for longer; otherwise back off 0.5 s * 2**retries, at most 8 s,
minus 0-25% jitter so that many clients do not come back in step.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 120.0


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait, if it said (headers must be case-insensitive)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        if delay == math.inf and value.strip().lower() not in ("inf", "+inf", "infinity", "+infinity"):
            return MAX_RETRY_AFTER + 1  # an overflowing number: an excessive delay, refused below
        return delay / divisor
    value = headers.get("retry-after")
    try:
        parsed = email.utils.parsedate_tz(value) if value else None
        return None if parsed is None else float(email.utils.mktime_tz(parsed) - time.time())
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def should_retry(status: int, headers: Mapping[str, str] | None) -> bool:
    """Whether an HTTP error status is worth another attempt."""
    wait = retry_after(headers)
    if wait is not None and math.isfinite(wait) and wait > MAX_RETRY_AFTER:
        return False
    explicit = headers.get("x-should-retry") if headers is not None else None
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in (408, 409, 429) or status >= 500


def retry_delay(retries_taken: int, headers: Mapping[str, str] | None = None,
                jitter: Callable[[], float] = random.random) -> float:
    """Seconds to sleep before retry number `retries_taken + 1`."""
    wait = retry_after(headers)
    if wait is not None and math.isfinite(wait) and 0 < wait <= MAX_RETRY_AFTER:
        return wait
    backoff = min(INITIAL_DELAY * 2.0 ** min(retries_taken, 1000), MAX_DELAY)
    return max(0.0, backoff * (1 - 0.25 * jitter()))
