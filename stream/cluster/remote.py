"""A camera whose pipeline runs on a cluster node, as the front door's run sees it.

`RemotePipeline` stands where a local `Pipeline` stands in the run (`run()` yields predictions,
`report` and `stats` at the end): it places the camera's worker (`stream.cluster.place`), takes
its records in order and hands them to the run's outputs as the local pipeline would. So the
day files, metrics, events and the API are the front door's, whatever node counts.

Each camera is counted by one worker at a time: the worker holds a lease (this front door, the
camera, an epoch), and a batch under any lease but the current one is refused and counted
(`refused`), never dispatched. When the worker is lost (its node died, it crashed, it stopped
answering), the front door kills it and places the camera again under the next epoch; the new
worker's clock carries on from the last record (`CameraSpec.resume_at`), and the time between is
an outage: `SourceLost` at the end of the last sample, `SourceBack` at the new worker's first,
exactly as a camera that drops and reconnects (listed, not counted). The counters go on from
where the lost worker left them, plus one reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from stream.cluster.place import Cluster, Placed, WorkerLost
from stream.cluster.records import Batch, CameraSpec, ModelFiles, Resources, Where
from stream.counting.report import Report
from stream.counting.stats import RunState, RunStats
from stream.errors import SourceError
from stream.model.card import ModelCard
from stream.outputs import events as ev
from stream.outputs.events import Event, SourceTag
from stream.outputs.retry import backoff_s
from stream.records import Frame, Gap, Lost, Prediction
from stream.run.pipeline import STOP_GRACE_S

log = logging.getLogger(__name__)

WAIT_S = 0.5  # a take's long poll: records reach the front door within this of being made
STAT_COUNTERS = ("samples", "frames_read", "dropped", "reconnects", "decoded", "inferences", "inferences_saved")
REPORT_COUNTERS = ("frames_read", "dropped", "reconnects", "inferences_saved")


def _emit_nothing(event: Event) -> None:
    pass


def _rebased(frame: Frame, age_shift: float) -> Frame:
    """The frame with its capture time on this process's monotonic clock (0: not known)."""
    return replace(frame, captured_at=frame.captured_at + age_shift) if frame.captured_at else frame


class RemotePipeline:
    """One camera on the cluster (see the module)."""

    def __init__(
        self,
        cluster: Cluster,
        spec: CameraSpec,
        model: Callable[[], ModelFiles],
        card: ModelCard,
        resources: Resources,
        emit: Callable[[Event], None] = _emit_nothing,
        *,
        tag: SourceTag,
        stop: threading.Event,
        pictures: Callable[[], bool] = lambda: False,
    ) -> None:
        """`model`: the model to ship, as checked (asked at each placing: a swapped model reaches
        the next worker too); `pictures`: whether sampled pictures should travel now."""
        self.cluster, self.spec, self.model, self.resources = cluster, spec, model, resources
        self.emit, self.tag, self.stop, self.pictures = emit, tag, stop, pictures
        self.stats = RunStats(
            source=spec.shown_url, live=True, classes=list(card.classes), characters=list(card.characters)
        )
        self.report: Report | None = None
        self.made_by = spec.model_sha256  # the model that made the latest result
        self.epoch = 0
        self.placed: Placed | None = None
        self.where: Where | None = None
        self.refused = 0  # records refused: under a lease that is not the camera's current one
        self.moves = 0  # times the camera was placed again after its worker was lost
        self._after = 0  # the last record taken under the current lease
        self._base: dict[str, int] = dict.fromkeys(STAT_COUNTERS, 0)  # the lost workers' counts
        self._started = False
        self._last: tuple[float, float] | None = None  # (camera time, Unix time here) of the last sample
        self._lost_at: float | None = None  # camera time an outage began, until the next sample
        self._failures = 0  # placings in a row that failed
        self._avoid: str | None = None  # the node of the worker just lost: not for the next one
        self._ended = False  # its worker's Ended has been handed on: nothing follows
        self.dropped = 0  # records the node let go (its outbox full): counted as an outage
        self._screen: dict[str, float] = {}  # the lost workers' seconds per class, carried on
        self._totals: dict[str, float] = {}
        self._outage_s = 0.0  # the lost workers' outages and the moves' own

    # -- the run's side -----------------------------------------------------------------------

    def run(self) -> Iterator[Prediction]:
        stop_sent: float | None = None
        stop_wait = STOP_GRACE_S + self.spec.settings.open_timeout_s + self.spec.settings.timeout_s + 10.0
        try:
            while not self._ended:
                if self.placed is None:
                    if self.stop.is_set():
                        return
                    self._place()
                    continue
                if self.stop.is_set() and stop_sent is None:
                    self.cluster.stop(self.placed)
                    stop_sent = time.monotonic()
                if stop_sent is not None and time.monotonic() - stop_sent > stop_wait:
                    log.warning("%s: no final report from its worker in %g s", self.spec.name, stop_wait)
                    return
                try:
                    starting = self.where is None and self._after == 0
                    batch = self.cluster.take(
                        self.placed, self._after, WAIT_S, self.pictures(), starting, stop=self._stopping(stop_sent)
                    )
                except WorkerLost as exc:
                    if self.stop.is_set():  # stopping anyway: nothing to place again
                        return
                    self._lose(str(exc))
                    continue
                yield from self.admit(batch)
                if batch.ended and not batch.records:
                    if batch.error and stop_sent is None:
                        raise SourceError(f"{self.spec.name}: {batch.error}")
                    return
        finally:
            if self.placed is not None:
                self.cluster.kill(self.placed)
                self.placed = None

    def _stopping(self, stop_sent: float | None) -> Callable[[], bool]:
        """When a waiting take gives up: a stop before the worker is asked to stop (it may never
        start: nothing to wait for), or its final report overdue."""
        if stop_sent is None:
            return lambda: self.stop.is_set() and self.where is None
        return lambda: False

    def admit(self, batch: Batch) -> Iterator[Prediction]:
        """Hand a batch's new records to the outputs, if it is under the current lease."""
        if self.placed is None or batch.lease != self.placed.lease:
            self.refused += len(batch.records)
            log.warning(
                "%s: %d records of an earlier worker (epoch %d) refused: epoch %d counts now",
                self.spec.name,
                len(batch.records),
                batch.lease.epoch,
                self.epoch,
            )
            return
        age_shift = time.monotonic() - batch.sent_mono  # the node's monotonic clock -> this process's
        for seq, made_by, event in batch.records:
            if seq <= self._after:
                continue  # taken already (a repeated take after a timeout)
            if seq > self._after + 1:  # the worker's full outbox let records go: down time, not counted
                lost = seq - self._after - 1
                self.dropped += lost
                log.warning("%s: %d records lost on the node; the time is an outage", self.spec.name, lost)
                self._down("records lost on the node")
            self._after = seq
            prediction = self._pass(event, made_by, age_shift)
            if prediction is not None:
                yield prediction

    # -- inside ------------------------------------------------------------------------------

    def _place(self) -> None:
        if self._failures and self.stop.wait(backoff_s(self._failures)):
            return
        self.epoch += 1
        resume = None
        if self._last is not None:  # its clock carries on: where the last sample was, and the time since
            now = time.time()
            resume = (self._last[0], max(0.0, now - self._last[1]), now)
        spec = replace(self.spec, resume_at=resume)
        try:
            self.placed = self.cluster.place(spec, self.model(), self.epoch, self.resources, self._avoid)
        except Exception as exc:  # an object store or scheduler refusal: tried again with backoff
            self._failures += 1
            log.error("%s: cannot place it on the cluster (%s); trying again", self.spec.name, exc)
            return
        self._after = 0
        self.where = None
        threading.Thread(target=self._locate, args=(self.placed,), daemon=True, name=f"where:{self.spec.name}").start()

    def _locate(self, placed: Placed) -> None:
        """Where the worker runs, once it runs (the API and /metrics show it)."""
        found = self.cluster.where(placed)
        if found is not None and self.placed is placed:
            self.where = found
            self._failures = 0
            log.info("%s: runs on node %s (%s), epoch %d", self.spec.name, found.node_id[:12], found.host, self.epoch)

    def _lose(self, why: str) -> None:
        """The worker is gone: an outage from the end of its last sample, and the camera placed again."""
        assert self.placed is not None
        log.warning("%s: its worker (epoch %d) is lost: %s; placing it again", self.spec.name, self.epoch, why)
        self.cluster.kill(self.placed)  # a slow one's late records are refused anyway; it must not run on
        self._avoid = self.where.node_id if self.where else None  # if it never started there, anywhere
        self.placed, self.where = None, None
        self._failures += 1
        self.moves += 1
        for key in STAT_COUNTERS:
            self._base[key] = getattr(self.stats, key)
        self._base["reconnects"] += 1
        self._screen = dict(self.stats.screen_s)
        self._totals = dict(self.stats.totals)
        self._outage_s = self.stats.outage_s
        self._down(f"worker lost: {why}")
        if self._started:  # the outputs know the camera: they hear it is down
            self.stats = replace(self.stats, state=RunState.RECONNECTING)
            self.emit(ev.Tick(self.tag, self.stats))

    def _down(self, why: str) -> None:
        """An outage from the end of the last sample, until the next one (not counted)."""
        if self._last is not None and self._lost_at is None:
            t_s, unix_s = self._last
            self._lost_at = t_s + min(self.spec.settings.every_s, max(0.0, time.time() - unix_s))
            self.emit(ev.SourceLost(self.tag, Lost(self._lost_at, why)))

    def _pass(self, event: Event, made_by: str, age_shift: float) -> Prediction | None:
        """One record to the outputs, as the local pipeline would have emitted it."""
        event = replace(event, tag=self.tag)
        match event:
            case ev.Started(stats=stats):
                self.stats = self._counted(stats)
                if self._started:
                    return None  # the camera's outputs started once; a new worker only carries on
                self._started = True
                self.emit(replace(event, stats=self.stats))
            case ev.Sampled(prediction=prediction, frame=frame, stats=stats):
                frame = _rebased(frame, age_shift)
                if self._lost_at is not None:
                    back = max(prediction.t_s, self._lost_at)
                    self._outage_s += back - self._lost_at
                    self.emit(ev.SourceBack(self.tag, Gap(self._lost_at, back)))
                    self._lost_at = None
                self.made_by = made_by
                age = max(0.0, time.monotonic() - frame.captured_at) if frame.captured_at else 0.0
                self._last = (prediction.t_s, time.time() - age)
                self.stats = self._counted(stats)
                self.emit(replace(event, frame=frame, stats=self.stats))
                return prediction
            case ev.Pictured(frame=frame):
                self.emit(replace(event, frame=_rebased(frame, age_shift)))
            case ev.Tick(stats=stats):
                self.stats = self._counted(stats)
                self.emit(replace(event, stats=self.stats))
            case ev.Checkpoint(report=report):
                self.emit(replace(event, report=self._counted_report(report)))
            case ev.Ended(report=report, stats=stats):
                self.stats = self._counted(stats)
                self.report = self._counted_report(report) if report is not None else None
                self.emit(replace(event, report=self.report, stats=self.stats))
                self._ended = True
            case ev.SourceLost() | ev.SourceBack():
                if self._lost_at is None:  # else within the front door's own outage, which ends at the next sample
                    self.emit(event)
            case ev.ClockJumped():
                self.emit(event)
        return None

    def _counted(self, stats: RunStats) -> RunStats:
        """A worker's numbers on top of the lost workers' and the outages the front door saw
        (moves, records lost on the node): the counters never go back."""
        counts = {k: getattr(stats, k) + self._base[k] for k in STAT_COUNTERS}
        screen = {k: v + stats.screen_s.get(k, 0.0) for k, v in self._screen.items()}
        totals = {k: v + stats.totals.get(k, 0.0) for k, v in self._totals.items()}
        for mine, theirs in ((screen, stats.screen_s), (totals, stats.totals)):
            mine.update({k: v for k, v in theirs.items() if k not in mine})
        outage = self._outage_s + stats.outage_s
        return replace(stats, screen_s=screen, totals=totals, outage_s=outage, **counts)

    def _counted_report(self, report: Report) -> Report:
        if not self.moves:
            return report
        return replace(report, **{k: getattr(report, k) + self._base[k] for k in REPORT_COUNTERS})
