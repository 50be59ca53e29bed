"""Which frames to analyse: decided by each frame's own timestamp, never by its index.

Frame indices lie for variable-frame-rate files and for files whose reported FPS is 0 or
absurd; timestamps do not. Samples fall on a grid anchored at the first frame: the first
frame at or after each grid point is taken, and a gap in the stream skips grid points rather
than producing a burst of catch-up samples. After an outage the grid is re-anchored at the
first frame back (`restart`), so the stream's return is sampled at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stream.defaults import EVERY_S
from stream.errors import BadInputError

# Half a tick of the coarsest common time base (1 ms: MKV, WebM, FLV): a frame stamped 6.999988 s
# (a 90 kHz or 1/30000 clock's rounding) is the 7.0 s sample. Below any frame duration, so it never
# picks a neighbouring frame; files drop undecoded only frames 1 ms or more before a due time.
_EPS = 5e-4


@dataclass
class Sampler:
    """Sample every `every_s` seconds of media (or monotonic) time; 0 takes every frame."""

    every_s: float = EVERY_S
    next_due_s: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.every_s) or self.every_s < 0:
            raise BadInputError(f"sampling interval must be >= 0 seconds, got {self.every_s}")

    def due(self, t_s: float, early_s: float = 0.0) -> bool:
        """True if the frame at `t_s` should be analysed; advances the grid when it is.

        `early_s` lets a frame up to that long before a grid point stand in for it: a camera
        decoded at keyframes only offers a picture about once per sample, and its keyframes
        arrive a little before or after the grid point by chance.
        """
        if self.next_due_s is None:
            self.next_due_s = t_s
        if t_s + _EPS + early_s < self.next_due_s:
            return False
        if self.every_s == 0:
            self.next_due_s = t_s + _EPS
            return True
        steps = max(1, math.floor((t_s + _EPS - self.next_due_s) / self.every_s) + 1)
        self.next_due_s += steps * self.every_s
        return True

    def restart(self) -> None:
        """Re-anchor the grid at the next frame (after an outage), so that frame is sampled."""
        self.next_due_s = None


def sample_mask(times_s: list[float], every_s: float) -> list[bool]:
    """Which of these frame times a `Sampler` takes (for tests and offline planning)."""
    sampler = Sampler(every_s)
    return [sampler.due(t) for t in times_s]


def interval_from(every_s: float | None, fps: float | None) -> float:
    """Turn the CLI's `--every` / `--fps` into one interval in seconds."""
    if every_s is not None and fps is not None:
        raise BadInputError("give --every or --fps, not both")
    if fps is not None:
        if not math.isfinite(fps) or fps <= 0:
            raise BadInputError(f"--fps must be > 0, got {fps}")
        return 1.0 / fps
    return EVERY_S if every_s is None else every_s
