import random
import threading
import time

import pytest

from stream.errors import SourceConnectionError
from stream.sources.reconnect import ReconnectPolicy, connect_with_retry


def test_backoff_doubles_is_capped_and_jittered():
    policy = ReconnectPolicy(initial_s=0.5, max_s=30, factor=2, jitter=0.25)
    rng = random.Random(0)
    delays = [policy.delay(k, rng) for k in range(1, 12)]
    for k, d in enumerate(delays, start=1):
        base = min(30, 0.5 * 2 ** (k - 1))
        assert base * 0.75 <= d <= min(30, base * 1.25)
    assert max(delays) <= 30
    assert len({round(d, 6) for d in delays[-3:]}) > 1  # jitter: capped delays still differ


class FlakyOpen:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise SourceConnectionError("rtsp://user:***@cam/x: cannot connect")
        return "info"


FAST = ReconnectPolicy(initial_s=0.01, max_s=0.02)


def test_retries_until_connected():
    opener, state = FlakyOpen(3), {}
    assert connect_with_retry(opener, FAST, threading.Event(), state.update, "cam", clock=time.monotonic) == "info"
    assert (
        opener.calls == 4 and state["connected"] and state["attempt"] == 0 and "cannot connect" in state["last_error"]
    )


@pytest.mark.parametrize(("max_attempts", "message"), [(0, "no retry"), (2, "after 2 retries")])
def test_gives_up_after_max_attempts(max_attempts, message):
    opener = FlakyOpen(10)
    policy = ReconnectPolicy(initial_s=0.01, max_s=0.02, max_attempts=max_attempts)
    with pytest.raises(SourceConnectionError, match=message):
        connect_with_retry(opener, policy, threading.Event(), {}.update, "cam", clock=time.monotonic)
    assert opener.calls == max_attempts + 1


def test_stop_ends_waiting_at_once():
    stop = threading.Event()
    stop.set()
    assert connect_with_retry(FlakyOpen(10), FAST, stop, {}.update, "cam", clock=time.monotonic) is None
