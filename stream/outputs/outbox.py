"""Messages to a receiver that may be slow or away (an MQTT broker, a webhook), sent off the pipeline.

The pipelines only `put` into a bounded outbox, which never blocks: when it is full the oldest
message is dropped and counted (the newest state is what a receiver wants), never hidden. One
sender thread per receiver takes messages out and delivers them, waiting out the receiver's
absence however long it lasts, so analysis never stalls on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

log = logging.getLogger(__name__)

OUTBOX_CAPACITY = 1000  # messages waiting per receiver: minutes of events for a few cameras
DRAIN_S = 5.0  # at the end, how long a receiver that is away is waited for before the rest is dropped


@dataclass(frozen=True)
class Message:
    """`topic` is relative to the receiver's prefix; `event`: a segment event (webhooks get only those)."""

    topic: str
    payload: str
    retain: bool = False
    event: bool = False


class Outbox:
    """A bounded queue that drops its oldest message when full; counts what went and what was lost."""

    def __init__(self, capacity: int = OUTBOX_CAPACITY) -> None:
        self.capacity = capacity
        self.sent = 0
        self.dropped = 0
        self._items: deque[Message] = deque()
        self._ready = threading.Condition()
        self._closed = False

    def put(self, message: Message) -> None:
        with self._ready:
            if self._closed:
                self.dropped += 1
                return
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(message)
            self._ready.notify()

    def get(self, timeout_s: float) -> Message | None:
        """The oldest message, or None after `timeout_s` (or at once once closed and empty)."""
        with self._ready:
            if not self._items and not self._closed:
                self._ready.wait(timeout_s)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        """No more messages; what is waiting may still be taken."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def lose(self, count: int = 1) -> None:
        """Count messages taken out that will never be delivered."""
        with self._ready:
            self.dropped += count

    def discard(self, taken: int = 0) -> int:
        """Drop what is left and `taken` messages already taken out (a receiver that did not come
        back in time); how many in all."""
        with self._ready:
            left = len(self._items) + taken
            self._items.clear()
            self.dropped += left
            return left

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)


class Sender:
    """One receiver shared by every source of a run, opened and closed once by the run (a
    context manager: it connects on entry and `close`s on exit).

    Subclasses say how to connect, deliver one message and disconnect; this class owns the outbox
    and the thread. `_deliver` returns False, after waiting a little, while the receiver is away:
    the message is tried again, until the run is over and the receiver has not come back within
    DRAIN_S (then it and the rest are counted as dropped); None when the receiver refused it.
    """

    kind = "receiver"  # "mqtt", "webhook": the `output` label of the outbox metrics

    def __init__(self, capacity: int = OUTBOX_CAPACITY) -> None:
        self.outbox = Outbox(capacity)
        self._thread: threading.Thread | None = None
        self._deadline: float | None = None  # set by close: how long a receiver that is away is waited for

    @property
    def connected(self) -> bool:
        return True

    def __enter__(self) -> Sender:
        """Connect and start delivering (once, by the run)."""
        self._connect()
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-sender", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put(self, message: Message) -> None:
        self.outbox.put(message)

    def close(self) -> None:
        """Deliver what is queued (waiting up to DRAIN_S for a receiver that is away), then disconnect."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._deadline = time.monotonic() + DRAIN_S
        self.outbox.close()
        thread.join(DRAIN_S + 5.0)
        self._disconnect()

    def _run(self) -> None:
        while True:
            message = self.outbox.get(0.2)
            if message is None:
                if self.outbox.closed:
                    return
                continue
            while (done := self._deliver(message)) is False:  # it waits a little itself while the receiver is away
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    lost = self.outbox.discard(taken=1)
                    log.warning("%s: %d messages not delivered before the end (receiver away)", self.kind, lost)
                    return
            if done:
                self.outbox.sent += 1
            else:
                self.outbox.lose()

    def _connect(self) -> None:
        pass

    def _deliver(self, message: Message) -> bool | None:
        """True: delivered; False: the receiver is away, try again; None: refused, drop it."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        pass
