"""What a source is and what it can do, declared once: the reader and the pipeline call these
members on every source and never probe one with `hasattr`.

Every source grabs a frame's time, decodes its picture on demand and has a clock. What differs
between kinds is declared as capabilities, with the defaults of `CaptureBase` for a source that
has none: a file sampled sparsely skips pictures (`skip_to`) and knows where its last frame
ends (`end_after_s`); a network camera decodes only keyframes when it may (`picture_ready`,
`early_s`); sources with their own media clock list where their timestamps jumped
(`discontinuities`); sources whose decoder works on frames nobody retrieves count its pictures
(`decoded`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from stream.records import Discontinuity, VideoInfo


@runtime_checkable
class Capture(Protocol):
    """A source the reader drives. Only the reader thread calls these (open, grab, retrieve, close)."""

    name: str
    live: bool  # monotonic-clock source that never ends by itself (camera, stream)
    reconnectable: bool  # a lost stream is reopened with backoff (network sources only)
    open_timeout_s: float  # how long opening may wait for the first picture
    timeout_s: float  # how long a read may wait before the stream counts as lost
    early_s: float  # how long before its due time a sample may be taken (keyframes-only decoding)
    recording: str | None  # what to open again to look over a whole recording ahead (files); None: live

    @property
    def picture_ready(self) -> bool:
        """Whether the grabbed frame has a picture to retrieve (False: the sampler waits for one)."""
        ...

    @property
    def decoded(self) -> int | None:
        """Pictures its decoder made, retrieved or not; None: only the retrieved ones (counted by the reader)."""
        ...

    @property
    def discontinuities(self) -> Sequence[Discontinuity]:
        """Where its timestamps jumped so far (its clock made them continuous), in order."""
        ...

    def open(self) -> VideoInfo: ...

    def grab(self) -> float | None:
        """The next frame's time on the source's clock, or None at the end (or when the stream dropped)."""
        ...

    def retrieve(self) -> np.ndarray | None:
        """The grabbed frame's picture (BGR), or None when it was not decoded."""
        ...

    def clock(self) -> float:
        """Seconds on the source's clock now (for time that passes without frames)."""
        ...

    def skip_to(self, due_s: float) -> None:
        """The next sample is due at `due_s`: pictures before it are not needed."""
        ...

    def end_after_s(self, last_t_s: float, interval_s: float | None) -> float:
        """Where the source's time ends after its last frame, at `last_t_s`."""
        ...

    def close(self) -> None: ...


class CaptureBase:
    """The capabilities of a source that has none of them: every grabbed frame has a picture, no
    sparse decoding, no timestamp jumps, no timeouts, and the last frame lasts one interval."""

    live = False
    reconnectable = False
    open_timeout_s = 0.0
    timeout_s = 0.0
    early_s = 0.0
    recording: str | None = None
    decoded: int | None = None

    @property
    def picture_ready(self) -> bool:
        """Every grabbed frame has a picture."""
        return True

    @property
    def discontinuities(self) -> Sequence[Discontinuity]:
        """No timestamp jumps."""
        return ()

    def set_timeouts(self, timeout_s: float, open_timeout_s: float) -> None:
        """A network source's limits: a read waits `timeout_s`; opening waits for the first picture
        `open_timeout_s`, and never less than a read may wait."""
        self.timeout_s = timeout_s
        self.open_timeout_s = max(open_timeout_s, timeout_s)

    def skip_to(self, due_s: float) -> None:
        """Nothing to skip: every frame is decoded as it is grabbed."""

    def end_after_s(self, last_t_s: float, interval_s: float | None) -> float:
        return last_t_s + (interval_s or 0.0)
