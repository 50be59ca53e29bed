"""A batch's first stage: one video in, its sampled pictures out, resized for the model.

It runs `watch`'s own file source, sampler and reader (`FileSource` with sparse decoding,
`Sampler`, `FrameReader`), so a video's samples, their pictures and its end time are exactly the
ones `watch` takes. Only the model's inputs leave the worker, never full frames, and not even
those of near-duplicate samples: whether a sample reuses the previous result depends only on the
thumbnails (`stream.counting.reuse.Reuse`, as in `watch`'s pipeline), so it is decided here and the
sample travels as a time. Each video ends with one record (sample times, which inferred picture each one uses, where
the video's time ends, or the one-line error that stopped it), so the driver can account it
without ever seeing a picture.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from stream.counting.reuse import Reuse
from stream.counting.tally import is_new, now_utc
from stream.defaults import CROP
from stream.frames.buffer import BufferPolicy, FrameBuffer
from stream.frames.crop import Crop, Cropper, parse_crop
from stream.frames.reader import FrameReader
from stream.frames.sampler import Sampler
from stream.records import Discontinuity, End, EndReason, Frame
from stream.sources.file import FileSource

CHUNK = 16  # pictures per block handed to the inference stage: small, so inference starts early
READ_AHEAD = 8  # full frames the reader may hold: bounds a decode worker's memory
NO_PICTURE = -1  # `seq` of the row that carries a video's record and no picture to infer


@dataclass(frozen=True)
class VideoRecord:
    """Everything about one decoded video except its pictures; travels as JSON in the last row."""

    times_s: list[float] = field(default_factory=list)  # every sample, in order
    origin: list[int] = field(default_factory=list)  # per sample, the inferred picture (seq) whose result it uses
    end_s: float | None = None  # where the video's time ends (one frame after its last frame)
    frames_read: int = 0
    inferences_saved: int = 0
    discontinuities: list[list[float]] = field(default_factory=list)  # [t_s, jump_s]: timestamp jumps, not counted
    error: str = ""  # one line; empty when the video was analysed to its end
    node: str = ""  # the Ray node that decoded it
    started_at: str = ""
    decode_s: float = 0.0
    crop: dict | None = None  # the black bars cut before the model saw the pictures (stream.frames.crop)

    @property
    def inferred(self) -> int:
        return self.origin[-1] + 1 if self.origin else 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> VideoRecord:
        return cls(**json.loads(text))


class SampledFrames:
    """The frames `watch` samples from an opened file, resized to `size`, then its `End`; read by
    `watch`'s own reader thread, so decoding overlaps whatever the consumer does."""

    def __init__(self, source: FileSource, every_s: float, size: tuple[int, int], crop: str | Crop = CROP) -> None:
        self._stop = threading.Event()
        self._buffer = FrameBuffer(BufferPolicy.WAIT, maxsize=READ_AHEAD)
        self.cropper = Cropper(crop)
        self._reader = FrameReader(
            source, Sampler(every_s), self._buffer, self._stop, model_size=size, opened=True, cropper=self.cropper
        )
        self.discontinuities: list[Discontinuity] = []  # where the file's timestamps jumped (in band)

    @property
    def frames_read(self) -> int:
        return self._reader.stats.frames_read

    def __iter__(self) -> Iterator[Frame | End]:
        self._reader.start()
        try:
            while True:
                for item in self._buffer.get(READ_AHEAD):
                    if isinstance(item, Discontinuity):
                        self.discontinuities.append(item)
                    if isinstance(item, Frame | End):
                        yield item
                    if isinstance(item, End):
                        return
        finally:
            self._stop.set()  # a consumer that stops early frees the reader, which closes the file
            self._reader.join(timeout=10)


Chunk = tuple[list[int], list[float], list[np.ndarray]]  # seq, t_s and model input of pictures to infer


def decode_video(
    source: str,
    path: str,
    every_s: float,
    size: tuple[int, int],
    skip_similar: float,
    node: str = "",
    crop: str = CROP,
) -> Iterator[Chunk | VideoRecord]:
    """Chunks of pictures to infer, then the video's record. Never raises: a video that cannot
    be read is a record with an error, and the batch goes on."""
    started, wall0 = now_utc(), time.monotonic()
    times: list[float] = []
    origin: list[int] = []
    chunk: Chunk = ([], [], [])
    reuse = Reuse(skip_similar)
    inferred = 0
    end_s: float | None = None
    error = ""
    frames: SampledFrames | None = None
    try:
        file = FileSource(path, sparse_every_s=every_s if every_s > 0 else None, threads=1)
        file.name = source  # messages name the video as the user gave it
        file.open()
        frames = SampledFrames(file, every_s, size, parse_crop(crop))
        for item in frames:
            if isinstance(item, End):
                end_s = item.end_s
                if item.reason is EndReason.FAILED:
                    error = one_line(item.error) if item.error else f"{source}: decoding failed"
                break
            if not is_new(item.t_s, times[-1] if times else None):
                continue
            times.append(item.t_s)
            if reuse.needs_model(item.thumb):  # else it reuses the last inferred picture's result
                assert item.model_input is not None  # the reader resizes every sample it hands out (model_size)
                seqs, chunk_times, inputs = chunk
                seqs.append(inferred)
                chunk_times.append(item.t_s)
                inputs.append(item.model_input)
                inferred += 1
            origin.append(inferred - 1)
            if len(chunk[0]) == CHUNK:
                yield chunk
                chunk = ([], [], [])
        if chunk[0]:
            yield chunk
        if frames.frames_read == 0 and not error:
            error = f"{source}: no decodable frames"
    except Exception as exc:  # corrupt, unreadable, vanished: recorded, never fatal to the batch
        error = one_line(exc)
    if error and not error.startswith(source):
        error = f"{source}: {error}"  # one line that names the video, whatever raised it
    jumps = [[d.t_s, d.jump_s] for d in frames.discontinuities] if frames is not None else []
    yield VideoRecord(
        discontinuities=jumps,
        times_s=times,
        origin=origin,
        end_s=end_s,
        frames_read=frames.frames_read if frames is not None else 0,
        inferences_saved=reuse.saved,
        error=error,
        node=node,
        started_at=started,
        decode_s=time.monotonic() - wall0,
        crop=frames.cropper.describe() if frames is not None else None,
    )


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def decode_rows(
    batch: dict[str, np.ndarray], every_s: float, size: tuple[int, int], skip_similar: float, crop: str = CROP
) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data's decode stage: a batch of one video in, blocks of rows out (`video`, `seq`,
    `t_s`, `image`, `record`); the last row has no picture (seq NO_PICTURE) and the record."""
    node = ray_node_id()
    width, height = size
    for index, source, path in zip(batch["video"], batch["source"], batch["path"], strict=True):
        for part in decode_video(str(source), str(path), every_s, size, skip_similar, node, crop):
            if isinstance(part, VideoRecord):
                yield {
                    "video": np.array([index], np.int64),
                    "seq": np.array([NO_PICTURE], np.int64),
                    "t_s": np.array([part.times_s[-1] if part.times_s else 0.0]),
                    "image": np.zeros((1, height, width, 3), np.uint8),
                    "record": np.array([part.to_json()], dtype=object),
                }
                continue
            seqs, times, pictures = part
            yield {
                "video": np.full(len(seqs), index, np.int64),
                "seq": np.array(seqs, np.int64),
                "t_s": np.array(times),
                "image": np.stack(pictures),
                "record": np.array([""] * len(seqs), dtype=object),
            }


def ray_node_id() -> str:
    """The Ray node this runs on (recorded in the summary), or "" outside Ray."""
    try:
        import ray
    except ImportError:
        return ""
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
