"""One media clock per source: the stream's own timestamps, made continuous in this one place.

Recordings spliced together (`cat a.ts b.ts`), an encoder restarted mid-broadcast or a live
stream's source switched all make timestamps jump. Taken as they come, a jump backwards makes
the rest of the recording look older than what was already counted (and it was lost), and a jump
forwards credits the whole jump to whatever was on screen. Here:
- a step backwards is a discontinuity: the clock goes on one frame later;
- a step forwards of more than `FORWARD_FRAMES` frame durations is one too where the container
  allows them (MPEG-TS/PS, whose demuxers flag `ts_discont`, or any live stream): the jump is
  listed and not counted. Elsewhere (MP4, MKV ...) a long step is a picture shown that long.
Every discontinuity is kept (`discontinuities`) so the report can say where they were.
"""

from __future__ import annotations

from stream.records import Discontinuity

FORWARD_FRAMES = 5  # a forward step longer than this many frame durations is a jump (where allowed)
TS_DISCONT = 0x200  # AVFMT_TS_DISCONT: the demuxer's timestamps may jump (MPEG-TS, MPEG-PS, HLS ...)


class MediaClock:
    """Turns a source's raw timestamps (seconds) into continuous seconds; the first frame keeps its
    own time (a file's first frame may start after the stream does)."""

    def __init__(self, frame_s: float | None = None, forward_jumps: bool = False) -> None:
        self.frame_s = frame_s if frame_s and frame_s > 0 else None  # nominal frame duration, if known
        self.forward_jumps = forward_jumps  # whether a long forward step is a jump (TS/PS, live)
        self.discontinuities: list[Discontinuity] = []
        self._raw: float | None = None
        self._t: float | None = None
        self._step: float | None = None  # the last regular step between frames
        self._offset = 0.0  # continuous time minus raw time
        self._anchor: float | None = None

    def anchor(self, t_s: float) -> None:
        """The next timestamp is put at `t_s` (or at the last frame's time, if later): a live
        stream's (re)connection, whose timestamps may start anywhere, starts where the monotonic
        clock says it arrived."""
        self._anchor = t_s

    def __call__(self, raw_s: float, elapsed_s: float | None = None) -> float:
        """Continuous seconds for a frame stamped `raw_s`. `elapsed_s` (live sources): wall time
        since the previous frame arrived; a forward step the wall clock saw too is no jump (a
        camera that drops to 1 fps when nothing moves, a stream that paused)."""
        if self._anchor is not None:
            t = self._anchor if self._t is None else max(self._anchor, self._t)
            self._anchor, self._offset, self._raw, self._t = None, t - raw_s, raw_s, t
            return t
        if self._raw is None or self._t is None:
            self._raw = self._t = raw_s
            return raw_s
        delta = raw_s - self._raw
        step = self.frame_s or self._step
        unexplained = delta - (elapsed_s or 0.0)
        if delta < -1e-6 or (self.forward_jumps and step is not None and unexplained > FORWARD_FRAMES * step):
            # Times stay raw + offset (no sum of float steps); the offset changes at jumps only.
            self._offset = self._t + (step or 0.0) - raw_s
            self.discontinuities.append(Discontinuity(raw_s + self._offset, delta - (step or 0.0)))
        elif delta > 1e-6:
            self._step = delta
        self._raw, self._t = raw_s, max(self._t, raw_s + self._offset)
        return self._t

    @property
    def now_s(self) -> float | None:
        """The clock at the last frame (None before the first)."""
        return self._t
