"""Reconnection with capped exponential backoff and jitter, for network sources only.

Files end and webcams are local; a network camera that drops is retried forever by default
(`--max-reconnects N` bounds it), waiting 0.5 s, 1 s, 2 s ... up to 30 s between attempts, each
wait jittered so many monitors restarting together do not hammer a recovering server in step.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from stream.errors import SourceConnectionError
from stream.records import VideoInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconnectPolicy:
    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.25  # each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
    max_attempts: int | None = None  # None: forever; 0: never retry

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait before attempt `attempt` (1-based): capped exponential, jittered."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.max_s, base * spread)


def connect_with_retry(
    open_once: Callable[[], VideoInfo],
    policy: ReconnectPolicy,
    stop: threading.Event,
    publish: Callable[..., None],
    name: str,
    clock: Callable[[], float],
) -> VideoInfo | None:
    """Call `open_once` until it succeeds; None if `stop` was set first. `publish(**changes)`
    hands on the connection's fields as they change (`connected`, `attempt`, `next_retry_in_s`,
    `last_error`): the caller keeps them in a frozen snapshot that other threads read whole.

    Raises SourceConnectionError once `policy.max_attempts` retries have failed.
    """
    attempt = 0
    while not stop.is_set():
        try:
            info = open_once()
        except SourceConnectionError as exc:
            publish(last_error=str(exc))
            if policy.max_attempts is not None and attempt >= policy.max_attempts:
                retries = "no retry" if policy.max_attempts == 0 else f"after {attempt} retries"
                raise SourceConnectionError(f"{exc} ({retries})") from None
            attempt += 1
            wait = policy.delay(attempt)
            publish(attempt=attempt, connected=False)
            log.warning("%s: unreachable; retry %d in %.1f s", name, attempt, wait)
            deadline = clock() + wait
            while not stop.is_set() and (left := deadline - clock()) > 0:
                publish(next_retry_in_s=left)
                stop.wait(min(left, 0.2))
            continue
        publish(connected=True, attempt=0, next_retry_in_s=0.0)
        return info
    return None
