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
from stream.counting.accounting import Accountant
from stream.counting.resume import Carried
from stream.errors import ModelError
from stream.fleet.models import Engines, Swappable
from stream.outputs import events as ev
from stream.outputs.events import Event, SourceTag
from stream.run.pipeline import Pipeline
from stream.sources.open import open_source

log = logging.getLogger(__name__)

OUTBOX = 20_000  # records a worker keeps for a front door that does not take them (hours at 1 sample/s)


class StaleLease(Exception):
    """A take under a lease other than the worker's: the camera has moved on."""


def model_file(data: bytes, sha256: str, cache: Path | None = None) -> Path:
    """The model's bytes checked against `sha256` and written once to this node's cache."""
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise ModelError(f"the model received has SHA-256 {found[:12]}, not {sha256[:12]}: refused")
    folder = cache or Path(tempfile.gettempdir()) / f"screentime-models-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sha256}.onnx"
    if not path.is_file():
        part = path.with_suffix(f".{os.getpid()}.part")
        part.write_bytes(data)
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

    def __init__(self, spec: CameraSpec, model: bytes, lease: Lease) -> None:
        self.spec, self.lease = spec, lease
        self.engines = Engines()
        self.engine = Swappable(self.engines.get(model_file(model, spec.model_sha256), spec.device, spec.threads))
        self._outbox: deque[tuple[int, str, Event]] = deque(maxlen=OUTBOX)
        self._seq = 0
        self._changed = threading.Condition()
        self._pictures = False
        self._stop = threading.Event()
        self._ended = False
        self._error = ""
        self._resume = spec.resume_at  # until its first sample, whose time is set from its capture
        source = open_source(spec.url, spec.settings)
        carried = None
        if spec.resume_at is not None:  # moved here from a lost node: its clock carries on
            t_s, unix_s = spec.resume_at
            carried = Carried(Accountant(self.engine.card.classes), t_s + max(0.0, time.time() - unix_s), 0)
        tag = SourceTag(0, spec.name, spec.shown_url, source.live)
        self.pipeline = Pipeline(
            source,
            self.engine,
            spec.settings,
            self._emit,
            tag=tag,
            stop=self._stop,
            model_name=spec.model_name,
            carried=carried,
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
        if self._resume is not None and isinstance(event, ev.Sampled):
            event = self._carried_on(event)
        light = _light(event, self._pictures)
        if light is None:
            return
        with self._changed:
            self._seq += 1
            self._outbox.append((self._seq, self.engine.made_by, light))
            self._changed.notify_all()

    def _carried_on(self, event: ev.Sampled) -> ev.Sampled:
        """The first sample of a camera placed again, on the clock it carries on: the offset set at
        start cannot know how long the connection takes (a live source's clock starts at its first
        frame), so the sample is put where its capture's wall time says, and the tally's offset with
        it (every later time follows). Nothing moves back: an offset is only ever made larger."""
        assert self._resume is not None
        t_s, unix_s = self._resume
        self._resume = None
        captured = event.frame.captured_at
        unix = time.time() - max(0.0, time.monotonic() - captured) if captured else time.time()
        late = t_s + max(0.0, unix - unix_s) - event.prediction.t_s
        if late <= 0:
            return event
        self.pipeline.tally.offset_s += late
        return replace(event, prediction=replace(event.prediction, t_s=event.prediction.t_s + late))

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
                self._outbox.popleft()
            while not self._outbox and not self._ended and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            records = tuple(self._outbox)
            ended = self._ended
        return Batch(self.lease, records, time.monotonic(), ended, self._error if ended else "")

    def swap(self, model: bytes, sha256: str) -> bool:
        """Take another model (same classes and input) from the next batch on."""
        return self.engine.swap(self.engines.get(model_file(model, sha256), self.spec.device, self.spec.threads))

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
