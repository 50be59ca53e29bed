"""The bounded, ordered hand-over from a reader thread to its pipeline; the policy is named, not implied.

Files use `BufferPolicy.WAIT`: the reader blocks when the consumer is busy, so no frame is ever
dropped. Live sources use `BufferPolicy.NEWEST`: a waiting frame is replaced by a newer one and
counted as dropped, so latency cannot build up when inference is slower than the stream.
Control records (`Lost`, `Gap`, `End`) are never dropped and never wait for room: they keep
their place in the order, so the consumer learns of an outage exactly between the frames
around it.
"""

from __future__ import annotations

import collections
import threading
from enum import StrEnum

from stream.records import Frame, Item


class BufferPolicy(StrEnum):
    WAIT = "wait"  # block the producer; never drop (files)
    NEWEST = "newest"  # keep only the newest frame; count drops (live)


class FrameBuffer:
    """Frames and control records in order; bounded in frames."""

    def __init__(self, policy: BufferPolicy, maxsize: int = 64) -> None:
        self.policy = policy
        self.maxsize = 1 if policy is BufferPolicy.NEWEST else maxsize
        self.dropped = 0
        self._items: collections.deque[Item] = collections.deque()
        self._frames = 0  # frames among _items
        self._cond = threading.Condition()

    def put(self, item: Item, stop: threading.Event | None = None) -> bool:
        """Hand over an item; False if `stop` was set while a frame waited for room."""
        with self._cond:
            if isinstance(item, Frame):
                if self.policy is BufferPolicy.NEWEST:
                    self._drop_waiting_frames()
                else:
                    while self._frames >= self.maxsize:
                        if stop is not None and stop.is_set():
                            return False
                        self._cond.wait(0.1)
                self._frames += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, limit: int, timeout_s: float = 0.1) -> list[Item]:
        """Wait up to `timeout_s` for an item, then take up to `limit` of those waiting ([] on timeout)."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            self._frames -= sum(isinstance(item, Frame) for item in batch)
            if batch:
                self._cond.notify_all()
            return batch

    def _drop_waiting_frames(self) -> None:
        if not self._frames:
            return
        kept: collections.deque[Item] = collections.deque(item for item in self._items if not isinstance(item, Frame))
        self.dropped += len(self._items) - len(kept)
        self._items, self._frames = kept, 0
