"""One camera's pipeline away from the front door: what a Ray actor runs on a cluster node.

The worker is the local pipeline (`stream.run.pipeline`) with its events kept in an outbox
instead of handed to outputs: the front door (`stream.cluster.remote`) takes them in order with
a long poll, and a take acknowledges everything before it, so a record is delivered until the
front door has it and never twice. Every take names the lease it was started under; a take
under another lease is refused, so once the front door has moved a camera, nothing the old
worker does is counted.

What crosses the network is the event records, stripped of pictures: a sampled picture goes only
when the front door asks for pictures (a camera with `collect:` or an overlay, or a live view
being watched). The model arrives as bytes and is checked against its SHA-256 before it is
written to this node's cache and loaded, so nodes need no shared storage.

Nothing here imports Ray: `stream.cluster.place` wraps this class as an actor, and the tests
run it in-process too.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import socket
import tempfile
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from stream.cluster.records import Batch, CameraSpec, Lease, Where
from stream.errors import ModelError
from stream.fleet.models import Engines, Swappable
from stream.model.engine import Engine, file_sha256, int8_sibling
from stream.outputs import events as ev
from stream.outputs.events import Event, SourceTag
from stream.records import Frame
from stream.run.pipeline import Pipeline
from stream.sources.open import open_source

log = logging.getLogger(__name__)

OUTBOX = 20_000  # records a worker keeps for a front door that does not take them (hours at 1 sample/s)
PICTURES = 250  # pictures among them (10 s of an overlay's frames): the first to go when it is behind
TAKE_MAX = 2_000  # records handed over in one take
START_MAX_S = 60.0  # what a worker's start may add to a moved camera's clock (the machines' clocks may differ)


class StaleLease(Exception):
    """A take under a lease other than the worker's: the camera has moved on."""


def model_file(data: bytes, sha256: str, name: str = "", cache: Path | None = None) -> Path:
    """The model's bytes checked against `sha256` and written to this node's cache: a folder of
    this user's only (never a shared /tmp one another user could plant a model in), the file
    written under a name of its own and moved in; a cached file is used only if its hash is right."""
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise ModelError(f"the model received has SHA-256 {found[:12]}, not {sha256[:12]}: refused")
    folder = cache or Path.home() / ".cache" / "screentime" / "models"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_uid != os.getuid():
        raise ModelError(f"{folder}: not this user's folder; the model is not written there")
    path = folder / (name or f"{sha256}.onnx")
    if path.is_file() and file_sha256(path) == sha256:
        return path
    fd, part = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(part, path)
    return path


def where() -> Where:
    """This process's node (Ray's id when it runs in Ray) and host."""
    node = ""
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return Where(node, socket.gethostname(), os.getpid())


class CameraWorker:
    """One camera's pipeline and its outbox (see the module)."""

    def __init__(self, spec: CameraSpec, model: bytes, twin: bytes | None, lease: Lease) -> None:
        self.spec, self.lease = spec, lease
        self.engines = Engines()
        self.engine = Swappable(self._load(model, twin, spec.model_sha256, spec.twin_sha256))
        self._outbox: deque[tuple[int, str, Event]] = deque()
        self._seq = 0
        self._pictured = 0  # Pictured records in the outbox
        self._changed = threading.Condition()
        self._pictures = False
        self._stop = threading.Event()
        self._ended = False
        self._error = ""
        self._built, self._built_unix = time.monotonic(), time.time()
        source = open_source(spec.url, spec.settings)
        tag = SourceTag(0, spec.name, spec.shown_url, source.live)
        self.pipeline = Pipeline(
            source,
            self.engine,
            spec.settings,
            self._emit,
            tag=tag,
            stop=self._stop,
            model_name=spec.model_name,
            clock_from=self._clock_from if spec.resume_at is not None else None,
        )
        self._thread = threading.Thread(target=self._run, name=f"camera:{spec.name}", daemon=True)
        self._thread.start()
        log.info("%s: running here (%s)", spec.name, spec.shown_url)

    def _run(self) -> None:
        try:
            for _ in self.pipeline.run():
                pass
        except Exception as exc:  # the front door hears of it in the last batch
            self._error = str(exc) or type(exc).__name__
            log.error("%s: %s", self.spec.name, self._error)
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _emit(self, event: Event) -> None:
        light = _light(event, self._pictures)
        if light is None:
            return
        with self._changed:
            if isinstance(light, ev.Pictured):
                if self._pictured >= PICTURES:
                    return  # a picture, not a count: the overlay misses it rather than the node its memory
                self._pictured += 1
            if len(self._outbox) >= OUTBOX:  # the oldest goes: the hole it leaves in the numbers is down time
                self._let_go()
            self._seq += 1
            self._outbox.append((self._seq, self.engine.made_by, light))
            self._changed.notify_all()

    def _let_go(self) -> None:
        """The oldest record out of the outbox (the caller holds `_changed`)."""
        if isinstance(self._outbox.popleft()[2], ev.Pictured):
            self._pictured -= 1

    def _clock_from(self, frame: Frame) -> float:
        """Moved here from a lost worker: the first frame's time on the camera's clock is the last
        sample's plus the time since (to the placing, on the front door's clock; the start, at most
        a minute, from the two machines' clocks; then to the capture, on this one's), whatever
        the connection took (a live source's own clock starts at its first frame)."""
        assert self.spec.resume_at is not None
        t_s, since_s, placed_unix = self.spec.resume_at
        starting = min(START_MAX_S, max(0.0, self._built_unix - placed_unix))
        captured = frame.captured_at or time.monotonic()
        return t_s + since_s + starting + max(0.0, captured - self._built) - frame.t_s

    # -- what the front door calls -------------------------------------------------------------

    def take(self, lease: Lease, after: int, wait_s: float, pictures: bool = False) -> Batch:
        """The records after `after` (those up to it are acknowledged and let go), waiting up to
        `wait_s` for one; `pictures`: whether sampled pictures should travel from now on."""
        if lease != self.lease:
            raise StaleLease(f"{self.spec.name}: lease {lease.epoch} is not this worker's ({self.lease.epoch})")
        self._pictures = pictures
        deadline = time.monotonic() + wait_s
        with self._changed:
            while self._outbox and self._outbox[0][0] <= after:
                self._let_go()
            while not self._outbox and not self._ended and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            records = tuple(itertools.islice(self._outbox, TAKE_MAX))
            ended = self._ended and len(records) == len(self._outbox)
        return Batch(self.lease, records, time.monotonic(), ended, self._error if ended else "")

    def _load(self, model: bytes, twin: bytes | None, sha256: str, twin_sha256: str | None) -> Engine:
        """The model written to this node's cache (its twin beside it) and loaded for this node's
        device: the INT8 twin on CPU, as `watch` chooses."""
        path = model_file(model, sha256)
        if twin is not None and twin_sha256:  # where choose_model looks for it
            model_file(twin, twin_sha256, int8_sibling(path).name)
        return self.engines.get(path, self.spec.device, self.spec.threads)

    def swap(self, model: bytes, twin: bytes | None, sha256: str, twin_sha256: str | None) -> bool:
        """Take another model (same classes and input) from the next batch on."""
        swapped = self.engine.swap(self._load(model, twin, sha256, twin_sha256))
        self.engines.keep({self.engine.current})  # the old model's memory let go once the next batch has it
        return swapped

    def stop(self) -> None:
        """End the pipeline: its `Ended` (with the final report) is the last record."""
        self._stop.set()

    def where(self) -> Where:
        return where()


def _light(event: Event, pictures: bool) -> Event | None:
    """The event as it crosses the network: pictures only when asked for, never the model's input
    or the near-duplicate thumbnail (the node's own business)."""
    match event:
        case ev.Sampled(frame=frame):
            image = frame.image if pictures else None
            return replace(event, frame=replace(frame, image=image, model_input=None, thumb=None))
        case ev.Pictured(frame=frame):
            if not pictures:
                return None
            return replace(event, frame=replace(frame, model_input=None, thumb=None))
        case _:
            return event
