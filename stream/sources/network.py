"""Live streams through PyAV (RTSP cameras, RTMP, UDP/RTP TS, live HLS, HTTP live and MJPEG):
the frames a sample does not need are not decoded.

Frames are timed by the stream's own timestamps (decode order, so B-frames do not step back),
made continuous by one `MediaClock` per source and anchored at each (re)connection to the
monotonic clock of its first frame: HLS segments that arrive in bursts still give one sample per
`--every` of media time, and a source whose timestamps jump or restart lists a discontinuity
instead of losing or crediting time. The monotonic clock only tells stalls and outages.

A camera sampled once a second sends 25 frames a second; OpenCV decodes all of them (its grab
decodes). Here every frame still reaches the reader, but after each sample
(`skip_to(next due time)`) the decoder is told what it may leave out until then:
- non-reference frames (most B-frames) are dropped unread, as files do (`skip_frame = NONREF`):
  nothing later is decoded from them, so the pictures kept are exact;
- where keyframes come at least as often as samples, only keyframes are decoded, the first one
  within half a keyframe interval of each due time (`early_s`; the reader lets the sampler take
  it). The frames between are not even handed to the decoder: a keyframe needs none of them.
A frame whose picture was not decoded says so (`picture_ready` is False), so the sampler waits
for the next one that has a picture instead of spending its due slot on it. Without
`sparse_every_s` (every frame sampled, or the overlay video wants every picture) every frame is
decoded in order.

Connection handling matches `stream.sources.open.NetworkSource`: open waits up to `open_timeout_s` for
the first picture; a stream that delivers no video for `timeout_s` is lost (FFmpeg's socket
timeout and PyAV's interrupt callback bound every blocking read, a watchdog the rest); errors
are one line with the URL's password masked (PyAV keeps FFmpeg's own log silent unless asked).

It runs past 300 lines because connecting, the media clock's anchoring and keyframes-only
decoding share one connection's state.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence

import av
import numpy as np
from av.video.frame import PictureType

from stream.defaults import OPEN_TIMEOUT_S, RTSP_TRANSPORT, TIMEOUT_S
from stream.errors import SourceConnectionError
from stream.records import VideoInfo
from stream.sources.capture import CaptureBase
from stream.sources.deinterlace import deinterlaced
from stream.sources.mediaclock import Discontinuity, MediaClock
from stream.sources.urls import mask_text, mask_url

log = logging.getLogger(__name__)

DROP_MARGIN_S = 1e-3  # a frame is droppable only if it arrives this long before the next sample
# Keyframes "as often as samples" within this much: a 29.97 fps camera with a keyframe every 30
# frames (1.001 s) sampled every second still decodes keyframes only, at 0.1% fewer samples.
KEYFRAME_SLACK = 1.05
# Demuxers that number frames at a made-up rate instead of timing them (MJPEG over HTTP): their
# frames are timed by arrival.
ARRIVAL_TIMED = ("mpjpeg", "mjpeg")
RTMP_PROBE_S = 1.0  # how long FFmpeg looks for an RTMP stream's tracks before it starts
KEYFRAME_HISTORY = 6  # keyframe times kept to measure their spacing


class PyAVNetworkSource(CaptureBase):
    """A live stream decoded by PyAV; the same interface and behaviour as `NetworkSource`, plus
    `skip_to`, `picture_ready`, `early_s` and `decoded` (pictures the decoder produced)."""

    live = True
    reconnectable = True

    def __init__(
        self,
        url: str,
        timeout_s: float = TIMEOUT_S,
        rtsp_transport: str = RTSP_TRANSPORT,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        sparse_every_s: float | None = None,
    ) -> None:
        self.name = mask_url(url)
        self.url = url
        self.set_timeouts(timeout_s, open_timeout_s)
        self.rtsp_transport = rtsp_transport
        self.sparse_every_s = sparse_every_s or None
        self.decoded: int = 0
        self._t0: float | None = None
        self._clock = MediaClock(forward_jumps=True)  # one per source, across reconnections
        self._container: av.container.InputContainer | None = None
        self._reset()

    def _reset(self) -> None:
        """Forget the previous connection: its packets, picture, due time and keyframe spacing."""
        self._stream: av.VideoStream | None = None
        self._packets: Iterator[av.Packet] | None = None
        self._last_packet_at = 0.0
        self._picture: av.VideoFrame | None = None
        self._primed_t: float | None = None
        self._due_s: float | None = None
        self._anchored = False  # whether this connection's first frame has set the media clock
        # How far this connection's media time ran ahead of the monotonic clock: frames FFmpeg
        # buffered while probing (or an HLS player's first segments) arrive at once but were sent
        # over seconds. `clock()` adds it, so time without frames (an outage's start, the end) is
        # told on the media clock too. Per connection: the next one is anchored where it arrives,
        # and the time its predecessor ran ahead is not counted twice (the outage is that shorter).
        self._lead_s = 0.0
        self._arrival_timed = False  # the stream's timestamps are made up: frames timed by arrival
        self._last_stamped_at: float | None = None  # when the last timestamped frame arrived
        self._keyframes_s: deque[float] = deque(maxlen=KEYFRAME_HISTORY)
        self._intra_keyframes = True  # until one decodes to something else than an intra picture
        self.keyframes_only = False  # decode nothing but keyframes (sparse sampling only)
        self.early_s = 0.0  # how long before its due time a sample may be taken (keyframes only)

    # -- the interface the reader uses ----------------------------------------------------------

    @property
    def picture_ready(self) -> bool:
        """Whether the frame just grabbed has a decoded picture (the sampler takes only those)."""
        return self._picture is not None

    def open(self) -> VideoInfo:
        """Connect and wait for the first decoded picture (SourceConnectionError if none comes)."""
        started = time.monotonic()
        self.close()
        options = {}
        if self.url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.rtsp_transport
            options["timeout"] = str(int(self.timeout_s * 1e6))  # socket inactivity, microseconds
        if self.url.lower().startswith("rtmp"):
            # FLV headers may announce audio that never comes: FFmpeg would probe 5 s for it.
            options["analyzeduration"] = str(int(RTMP_PROBE_S * 1e6))
        try:
            # Blocking calls are interrupted after the open timeout while connecting and probing,
            # and after `timeout_s` for each read once streaming.
            self._container = av.open(self.url, options=options, timeout=(self.open_timeout_s, self.timeout_s))
        except av.FFmpegError as exc:
            raise SourceConnectionError(f"{self.name}: cannot connect ({_reason(exc)})") from None
        if not self._container.streams.video:
            self.close()
            raise SourceConnectionError(f"{self.name}: no video stream")
        self._stream = self._container.streams.video[0]
        self._arrival_timed = self._container.format.name in ARRIVAL_TIMED
        # One thread per camera: frame threads would hold pictures back (a frame per thread) and
        # several cameras already keep every core busy.
        self._stream.codec_context.thread_count = 1
        self._packets = self._container.demux()
        self._last_packet_at = time.monotonic()
        rate = self._stream.average_rate or self._stream.guessed_rate
        fps = float(rate) if rate else None
        if fps and 0.5 <= fps <= 1000:
            self._clock.frame_s = 1 / fps
        deadline = started + self.open_timeout_s
        while self._picture is None:  # until a keyframe: earlier frames have no picture
            arrived = self._read(deadline)
            if arrived is None:
                self.close()
                raise SourceConnectionError(f"{self.name}: connected, but no picture within {self.open_timeout_s:g} s")
        self._primed_t = arrived
        return VideoInfo(
            width=self._picture.width,
            height=self._picture.height,
            fps=fps if fps and 0.5 <= fps <= 1000 else None,
            frame_count=None,
            live=True,
        )

    def grab(self) -> float | None:
        """The next frame's time on the source's media clock (seconds since the first frame of the
        first connection), or None when the stream is lost (nothing for `timeout_s`, an error, or
        its end)."""
        if self._primed_t is not None:  # the picture open() waited for
            t_s, self._primed_t = self._primed_t, None
            return t_s
        if self._packets is None:
            return None
        return self._read(self._last_packet_at + self.timeout_s)

    @property
    def discontinuities(self) -> Sequence[Discontinuity]:
        """Where the stream's timestamps jumped so far (stream.sources.mediaclock)."""
        return self._clock.discontinuities

    def retrieve(self) -> np.ndarray | None:
        """The grabbed frame's picture (BGR), or None if it was not decoded."""
        return None if self._picture is None else deinterlaced(self._picture).to_ndarray(format="bgr24")

    def skip_to(self, due_s: float) -> None:
        """The next sample is due at `due_s`: frames before it need no picture."""
        if self.sparse_every_s is not None:
            self._due_s = due_s

    def clock(self) -> float:
        """Seconds on this source's clock now (for time that passes without frames)."""
        return 0.0 if self._t0 is None else time.monotonic() - self._t0 + self._lead_s

    def close(self) -> None:
        # The container first: the demuxer's read timeout is still armed while its generator
        # lives, so a hung camera cannot hold the goodbye (RTSP TEARDOWN) either.
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError as exc:
                log.debug("%s: close: %s", self.name, _reason(exc))
            self._container = None
        if self._packets is not None:
            # PyAV's demux() is a generator, which its stubs declare as a plain Iterator (no close()).
            self._packets.close()  # type: ignore[attr-defined]
        self._reset()

    # -- reading and decoding ---------------------------------------------------------------------

    def _read(self, deadline: float) -> float | None:
        """Demux and (as far as needed) decode the next video frame; its media time, or None if
        none came before `deadline`, the read failed or the stream ended."""
        self._picture = None
        assert self._packets is not None and self._stream is not None  # reading: connected
        while True:
            try:
                packet = next(self._packets, None)
            except av.FFmpegError as exc:  # timed out, connection reset, server said goodbye ...
                log.debug("%s: read: %s", self.name, _reason(exc))
                return None
            now = time.monotonic()
            video = packet is not None and packet.stream_index == self._stream.index
            if packet is None or (video and packet.size == 0):
                return None  # the end of the stream (the flush packets come last)
            if now > deadline:
                # Video stopped (other streams may go on), or this is the frame FFmpeg's parser
                # still held when the read timed out: it was sent before the hang, not now.
                return None
            if video:
                self._last_packet_at = now
                t_s = self._media_time(packet, now)
                self._decode(packet, t_s)
                return t_s

    def _media_time(self, packet: av.Packet, now: float) -> float:
        """The packet's time on the media clock; a connection's first packet, or one without a
        timestamp, is placed by its arrival."""
        if self._t0 is None:
            self._t0 = now
        arrived = now - self._t0 + self._lead_s
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None or packet.time_base is None or self._arrival_timed:
            self._anchored = False  # no timestamp: timed by arrival, the next one re-anchored
            self._clock.anchor(arrived)
            return self._clock(0.0)
        if not self._anchored:
            self._clock.anchor(arrived)
            self._anchored = True
        elapsed = now - self._last_stamped_at if self._last_stamped_at is not None else None
        self._last_stamped_at = now
        t_s = self._clock(float(stamp * packet.time_base), elapsed)
        self._lead_s += max(0.0, t_s - arrived)
        return t_s

    def _decode(self, packet: av.Packet, t_s: float) -> None:
        """Hand the packet to the decoder unless its picture is not needed (see the module)."""
        key = packet.is_keyframe
        if key:
            self._note_keyframe(packet)
        due_s = self._due_s
        sparse = due_s is not None
        keyframes = self.keyframes_only and sparse
        assert self._stream is not None  # decoding: connected
        codec = self._stream.codec_context
        if keyframes and due_s is not None and (not key or t_s < due_s - self.early_s):
            return  # not decoded at all: nothing that is decoded refers to it
        droppable = due_s is not None and not keyframes and t_s + DROP_MARGIN_S < due_s
        codec.skip_frame = "NONREF" if droppable else "DEFAULT"
        try:
            pictures = codec.decode(packet)
            if keyframes:  # a decoder that reorders (B-frames) would hold the keyframe back
                pictures += self._drain()
        except av.FFmpegError as exc:  # a damaged packet: go on, as players do
            log.debug("%s: frame at %.3f s not decoded (%s)", self.name, t_s, _reason(exc))
            return
        self.decoded += len(pictures)
        picture = pictures[-1] if pictures else None
        if keyframes and pictures:
            # The keyframe's own picture; the decoder may still have held older ones.
            picture = next((p for p in reversed(pictures) if p.pict_type == PictureType.I), None)
            if picture is None:  # a "keyframe" that starts a gradual intra refresh: it needs what follows
                self._intra_keyframes = False
                self._stop_keyframes_only("its keyframes are not whole pictures (intra refresh)")
        self._picture = picture

    def _drain(self) -> list[av.VideoFrame]:
        """Every picture the decoder still holds; then it starts afresh (the next packet sent is
        a keyframe, which needs nothing before it)."""
        assert self._stream is not None  # decoding: connected
        codec = self._stream.codec_context
        pictures = codec.decode(None)
        codec.flush_buffers()
        return pictures

    def _note_keyframe(self, packet: av.Packet) -> None:
        """Measure keyframe spacing (stream timestamps: exact, unlike arrival times) and decide, at
        a keyframe, whether the coming frames need decoding at all."""
        if self.sparse_every_s is None or not self._intra_keyframes:
            return
        if packet.pts is not None:
            self._keyframes_s.append(float(packet.pts * packet.time_base))
        if len(self._keyframes_s) < 3:
            return
        # The longest recent gap: extra keyframes (scene cuts, one sent on connect) must not make
        # a camera whose regular interval is longer look as if it had keyframes often enough.
        spacing = max(b - a for a, b in itertools.pairwise(self._keyframes_s))
        if 0 < spacing <= self.sparse_every_s * KEYFRAME_SLACK:
            if not self.keyframes_only:
                log.info(
                    "%s: decoding keyframes only (one every %.2f s, sampling every %g s)",
                    self.name,
                    spacing,
                    self.sparse_every_s,
                )
            self.keyframes_only, self.early_s = True, spacing / 2
        elif self.keyframes_only:
            self._stop_keyframes_only(f"keyframes now {spacing:.2f} s apart")

    def _stop_keyframes_only(self, why: str) -> None:
        """Back to decoding every reference frame, from this keyframe on."""
        log.info("%s: decoding every reference frame again: %s", self.name, why)
        self.keyframes_only, self.early_s = False, 0.0
        self._keyframes_s.clear()


def _reason(exc: av.FFmpegError) -> str:
    """FFmpeg's words without the URL PyAV appends to them (it carries the password)."""
    return mask_text(exc.strerror or type(exc).__name__)
