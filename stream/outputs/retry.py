"""Writes that may fail for a while (disk full, permissions, a directory gone): retried with
backoff, the output's state kept for the API and `/metrics`.

An output that keeps what it has learnt in memory (a camera's day totals) must not be cut off
by one failed write: it asks `Retry` whether a write is due, tries, and reports how it went.
After a failure the next try waits 1, 2, 4 ... seconds (at most RETRY_MAX_S); the first write
that succeeds makes the output healthy again. Failing and recovering are each logged once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from stream.defaults import RETRY_FIRST_S, RETRY_MAX_S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputHealth:
    """An output's state as the API and `/metrics` show it."""

    ok: bool = True
    error: str = ""  # the last failure, one line ("" while ok)
    since: float | None = None  # Unix time of the first failure in a row
    failures: int = 0  # failed tries in a row
    errors: int = 0  # failed tries since the start (a counter)

    def to_dict(self) -> dict:
        return {
            "state": "ok" if self.ok else "retrying",
            "error": self.error or None,
            "since": round(self.since, 3) if self.since is not None else None,
            "failures": self.failures,
        }


def backoff_s(failures: int, first_s: float = RETRY_FIRST_S, most_s: float = RETRY_MAX_S) -> float:
    """Seconds before the next try after `failures` failed tries in a row (0 when none failed)."""
    if failures <= 0:
        return 0.0
    return min(most_s, first_s * 2.0 ** min(failures - 1, 30))


class Retry:
    """One output's tries: `due()` says whether to try now, `attempt(write)` tries and keeps the state."""

    def __init__(
        self, what: str, wall: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.wall, self.clock = wall, clock
        self.health = OutputHealth()
        self._next_at = 0.0

    def due(self) -> bool:
        return self.health.ok or self.clock() >= self._next_at

    def attempt(self, write: Callable[[], object]) -> bool:
        """Run `write` (what it returns is not used); an OSError is kept (and logged the first time), not raised."""
        try:
            write()
        except OSError as exc:
            self.failed(exc.strerror or str(exc))
            return False
        self.succeeded()
        return True

    def failed(self, error: str) -> None:
        h = self.health
        if h.ok:
            log.warning("%s: %s; retrying (what it holds is kept in memory meanwhile)", self.what, error)
        failures = h.failures + 1
        self.health = OutputHealth(False, error, h.since if not h.ok else self.wall(), failures, h.errors + 1)
        self._next_at = self.clock() + backoff_s(failures)

    def succeeded(self) -> None:
        h = self.health
        if not h.ok:
            down_s = self.wall() - (h.since or self.wall())
            log.warning("%s: written again after %.0f s down (%d failed tries)", self.what, down_s, h.failures)
        self.health = OutputHealth(errors=h.errors)
        self._next_at = 0.0
