"""`screentime serve CONFIG.yaml`: one Run (stream.run.run) holding a camera per config entry.

The config is reloaded on SIGHUP, when the file (or a camera's model file) changes, and on
`POST /api/reload`: cameras added start, cameras removed stop with their final day file,
cameras changed restart, a camera whose only change is its model (another path, or a new file
at the same path) keeps running with the new engine from its next batch, and the others are not
touched. A config that no longer validates, or names a model that does not load, is refused
with one line and the running one kept. SIGTERM (or Ctrl-C) stops every camera with its day
file written, then the service exits 0 whatever the cameras' states (4 when a camera's last day
file could not be written).

Every change takes one path, whoever asks (the file watcher, SIGHUP, the API): the candidate
config is read and fully checked, every model it names loaded, every camera to (re)start given
its source (an http camera probed, with a timeout) — all before anything is stored or applied,
and outside the lock that the API's readers share. Only then is the file written (through a
symlink to its target) and the running cameras changed. So the file on disk is always one that
`serve --check` and a restart accept.

It runs past 300 lines because starting, reloading and describing cameras share the one lock
and member table that keep a change of the camera set atomic.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import assert_never

import yaml
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector as MetricsCollector

from stream.cluster.place import Cluster
from stream.cluster.records import CameraSpec, ModelFiles, Resources
from stream.cluster.remote import RemotePipeline
from stream.counting.stats import RunStats
from stream.defaults import MQTT_UPDATE_S
from stream.errors import ModelError, OutputError, ScreentimeError
from stream.fleet.collect import Caps, Collector, CollectSink
from stream.fleet.config import Camera, FleetConfig, check_config, check_size, expand, load_config, parse_raw, read_raw
from stream.fleet.dayfiles import DayFilesSink
from stream.fleet.models import Engines, Swappable
from stream.logs import MaskSecrets
from stream.model.engine import Engine
from stream.outputs import events as ev
from stream.outputs.atomic import atomic_write_text
from stream.outputs.events import Event, Output, OutputBase, SourceTag
from stream.outputs.liveview import LiveView
from stream.outputs.metrics import SPEC, RunMetrics, family
from stream.outputs.monitoring import JITTER, make_sender
from stream.outputs.outbox import Sender
from stream.outputs.retry import OutputHealth
from stream.run.run import Run
from stream.settings import SourceSettings
from stream.sources.open import Source, open_source
from stream.version import __version__

log = logging.getLogger(__name__)

WATCH_S = 1.0  # how often the config file and the model files are looked at


@dataclass
class Member:
    """A running camera and what the service holds of it."""

    camera: Camera
    tag: SourceTag
    engine: Swappable
    days: DayFilesSink
    collector: Collector | None = None
    remote: RemotePipeline | None = None  # on a cluster: its worker's side in this process
    shipped: _Shipped | None = None  # on a cluster: the model its workers get

    @property
    def made_by(self) -> str:
        """The model that made its latest result (on a cluster, the worker says)."""
        return self.remote.made_by if self.remote is not None else self.engine.made_by

    def outputs(self) -> dict[str, OutputHealth]:
        """Each file output's state, as the API and /metrics show it."""
        found = {"day_files": self.days.health}
        if self.collector is not None:
            found["collect"] = self.collector.retry.health
        return found


@dataclass
class _Shipped:
    """The model a cluster's camera ships to its workers, as the front door checked it (replaced
    on a swap; read by the camera's thread at each placing)."""

    files: ModelFiles


@dataclass(frozen=True)
class _Plan:
    """A checked config and what applying it needs that could fail or take time, made beforehand."""

    config: FleetConfig
    engines: dict[str, Engine]  # camera name -> its loaded engine
    sources: dict[str, Source | None]  # cameras to (re)start -> their built, unopened source (None: on a cluster)
    models: dict[str, ModelFiles]  # on a cluster: each camera's model as checked, to ship


def _restarts(old: Camera, new: Camera) -> bool:
    """A change other than the model restarts the camera (a model change is swapped in while it runs)."""
    return dataclasses.replace(old, model=new.model) != new


class _Status(OutputBase):
    """The run's output that keeps what the API shows of each camera: its latest numbers and sample
    (frozen snapshots from the events, by source key)."""

    def __init__(self) -> None:
        self.stats: dict[int, RunStats] = {}
        self.last: dict[int, dict] = {}

    def handle(self, event: Event) -> None:
        match event:
            case ev.Started(tag=tag, stats=stats) | ev.Tick(tag=tag, stats=stats) | ev.Ended(tag=tag, stats=stats):
                self.stats[tag.key] = stats
            case ev.Sampled(tag=tag, prediction=prediction, stats=stats):
                self.stats[tag.key] = stats
                at = datetime.now(UTC).isoformat(timespec="seconds")
                self.last[tag.key] = {
                    "class": prediction.label,
                    "confidence": round(prediction.confidence, 4),
                    "at": at,
                }
            case ev.Pictured() | ev.SourceLost() | ev.SourceBack() | ev.ClockJumped() | ev.Checkpoint():
                pass
            case _:
                assert_never(event)


class Service:
    def __init__(self, config: FleetConfig, mask: MaskSecrets | None = None, cluster: Cluster | None = None) -> None:
        """`cluster`: the cameras' pipelines run on its nodes (this process keeps everything else)."""
        self.config = config
        self.cluster = cluster
        self.mask = mask or MaskSecrets()
        self.mask.add(config.secrets())
        self.senders: dict[tuple[str, str], Sender] = {}  # (kind, expanded URL) -> an open sender
        self.holds = ExitStack()  # the senders, closed after every camera
        self.engines = Engines()
        self.members: dict[str, Member] = {}
        self.lock = threading.RLock()  # one change of the camera set at a time (held while applying)
        self.edit_lock = threading.Lock()  # one change of the config at a time (held while checking, too)
        self.metrics = RunMetrics({"version": __version__, "config": config.path.name})  # a run output
        self.registry = self.metrics.registry  # what the service's /metrics serves
        self.registry.register(_OutputsCollector(self))
        if cluster is not None:
            self.registry.register(_PlacesCollector(self))
        self.view = LiveView(by_name=True)  # mounted on the service's port: /view, /view/NAME.mjpg
        self.status = _Status()
        self.run = Run(None, [self.status, self.metrics, self.view], keep_open=True)  # each camera brings its engine
        self.reload_requested = threading.Event()
        self._stamps = self._file_stamps(config)

    # -- cameras ---------------------------------------------------------------------------

    def start(self) -> None:
        plan = self._plan(self.config)
        self.run.open()
        with self.lock:
            for name, cam in self.config.cameras.items():
                self._add(cam, plan.engines[name], plan.sources[name], plan.models.get(name))

    def _plan(self, new: FleetConfig) -> _Plan:
        """Everything applying `new` needs that can fail or take time: every model loaded and checked,
        every camera to (re)start given its source (an http(s) camera is probed, with a timeout).
        Raises a one-line ScreentimeError; nothing is stored or changed."""
        self.mask.add(new.secrets())  # before any line about a new camera
        # on a cluster the model is checked here on CPU (its card, and that it runs); each node
        # loads it for its own device
        device = "cpu" if self.cluster is not None else None
        engines = {name: self.engines.get(cam.model, device or cam.device) for name, cam in new.cameras.items()}
        models = {name: _checked(cam.model, engines[name]) for name, cam in new.cameras.items()} if device else {}
        members = dict(self.members)
        sources = {}
        for name, cam in new.cameras.items():
            member = members.get(name)
            if member is None or _restarts(member.camera, cam):
                settings = cam.settings(new.checkpoint_s)
                # on a cluster the camera is opened where it runs (it may be reachable from there only)
                sources[name] = open_source(cam.source(), settings) if self.cluster is None else None
        return _Plan(new, engines, sources, models)

    def _add(self, cam: Camera, engine: Engine, source: Source | None, files: ModelFiles | None = None) -> None:
        swappable = Swappable(engine)
        zone = self.config.timezone
        made_by = lambda: self.members[cam.name].made_by if cam.name in self.members else swappable.made_by  # noqa: E731
        days = DayFilesSink(
            cam.reports / cam.name,
            zone,
            source=cam.shown_url,
            model=str(cam.model),
            every_s=cam.every_s,
            model_of=made_by,
        )
        outputs: list[Output] = [days]
        collector = None
        if cam.collect is not None:
            c = cam.collect
            caps = Caps(c.per_hour, c.per_day, int(c.max_mb * 1e6), c.max_margin)
            card = engine.card
            collector = Collector(Path(c.dir) / cam.name, caps, zone, card.classes, card.multi_label, engine.sha256)
            outputs.append(CollectSink(collector, model_of=made_by))
        senders = [self._sender(kind, url) for kind, url in (("mqtt", cam.mqtt), ("webhook", cam.webhook)) if url]
        if senders:  # the senders are shared by the cameras with the same broker or URL
            from stream.outputs.event_sink import SourceEvents

            outputs.append(SourceEvents(cam.name, senders, cam.every_s, MQTT_UPDATE_S, JITTER * cam.every_s))
        if cam.overlay is not None:
            from stream.outputs.overlay import OverlaySink

            out = Path(cam.overlay.dir) / cam.name / f"{cam.name}.mp4"
            out.parent.mkdir(parents=True, exist_ok=True)
            outputs.append(OverlaySink(out, live=True, segment_minutes=cam.overlay.segment_minutes))
        settings = cam.settings(self.config.checkpoint_s)
        remote, shipped = None, None
        if source is None:
            assert files is not None  # planned with the cluster's models
            shipped = _Shipped(files)
            tag, remote = self._add_remote(cam, settings, swappable, outputs, shipped)
        else:
            tag = self.run.add_source(
                source, settings, name=cam.name, outputs=outputs, engine=swappable, model_name=str(cam.model)
            )
        self.members[cam.name] = Member(cam, tag, swappable, days, collector, remote, shipped)
        log.info("%s: started (%s, every %g s)", cam.name, cam.shown_url, cam.every_s)

    def _add_remote(
        self, cam: Camera, settings: SourceSettings, engine: Swappable, outputs: list[Output], shipped: _Shipped
    ) -> tuple[SourceTag, RemotePipeline]:
        """The camera's pipeline placed on the cluster; its records reach `outputs` here."""
        assert self.cluster is not None
        cluster = self.cluster
        place = cam.resources
        resources = Resources(place.cpus, place.gpus, dict(place.custom))
        threads = max(1, math.ceil(place.cpus)) if place.cpus > 0 else 0  # as many as Ray holds for it
        spec = CameraSpec(
            cam.name, cam.source(), cam.shown_url, settings, cam.device, engine.sha256, str(cam.model), threads=threads
        )
        always = cam.collect is not None or cam.overlay is not None  # they need the pictures

        def make(emit, tag: SourceTag, stop: threading.Event) -> RemotePipeline:
            return RemotePipeline(
                cluster,
                spec,
                lambda: shipped.files,
                engine.card,
                resources,
                emit,
                tag=tag,
                stop=stop,
                pictures=lambda: always or self.view.watched(cam.name),
            )

        tag = self.run.add_runner(make, cam.name, cam.shown_url, True, outputs=outputs)
        remote = self.run.pipeline(tag)
        assert isinstance(remote, RemotePipeline)
        return tag, remote

    def _sender(self, kind: str, url: str):
        """One open sender per broker (one connection, one last will) or webhook URL."""
        expanded = expand(url, f"{kind} {url}")
        key = (kind, expanded)
        if key not in self.senders:
            self.senders[key] = self.holds.enter_context(make_sender(kind, expanded))
        return self.senders[key]

    def _remove(self, name: str) -> None:
        member = self.members[name]
        self.run.remove_source(member.tag, timeout_s=60)
        del self.members[name]  # listed until its day file is final
        log.info("%s: stopped, day file %s written", name, member.days.directory)

    def _apply(self, plan: _Plan) -> dict[str, list[str]]:
        """Make the running cameras the planned config's; what changed, by kind."""
        new, engines, sources = plan.config, plan.engines, plan.sources
        with self.lock:
            old = self.config
            kept = ("timezone", "host", "port", "token", "checkpoint_s")  # the whole service's: read once
            for key in kept:
                if getattr(new, key) != getattr(old, key):
                    log.warning("%s changed in %s: it takes effect at the next start", key, new.path)
            changes: dict[str, list[str]] = {"added": [], "removed": [], "restarted": [], "swapped": []}
            for name in [n for n in self.members if n not in new.cameras]:
                self._remove(name)
                changes["removed"].append(name)
            for name, cam in new.cameras.items():
                member = self.members.get(name)
                if member is None:
                    self._add(cam, engines[name], sources[name], plan.models.get(name))
                    changes["added"].append(name)
                elif _restarts(member.camera, cam):
                    self._remove(name)
                    self._add(cam, engines[name], sources[name], plan.models.get(name))
                    changes["restarted"].append(name)
                else:
                    if member.engine.swap(engines[name]):
                        self._ship(member, plan.models.get(name))
                        changes["swapped"].append(name)
                        log.info("%s: model %s (sha256 %s) from the next sample", name, cam.model, engines[name].sha256)
                    member.camera = cam
            self.config = dataclasses.replace(new, **{key: getattr(old, key) for key in kept})
            self._stamps = self._file_stamps(new)
            self.engines.keep({m.engine.current for m in self.members.values()})
            return changes

    def _ship(self, member: Member, files: ModelFiles | None) -> None:
        """A swapped model to the camera's worker (a worker placed later gets it anyway)."""
        if member.shipped is None or files is None:
            return
        member.shipped.files = files  # what any later placing ships
        remote = member.remote
        if self.cluster is None or remote is None or remote.placed is None:
            return
        try:
            self.cluster.swap(remote.placed, files)
        except Exception as exc:  # the worker lost meanwhile: its next placing takes the new model
            log.warning(
                "%s: the new model did not reach its worker (%s); it will at its next placing", member.camera.name, exc
            )

    def reload(self) -> dict[str, list[str]]:
        """Read the file again and apply it; raises a one-line ScreentimeError (old config kept)."""
        with self.edit_lock:
            return self._apply(self._plan(load_config(self.config.path)))

    def edit(self, change: Callable[[dict], None]) -> dict[str, list[str]]:
        """Change the file as the API asks: the candidate (the file as it is, changed) checked as a
        restart would check the text about to be written, then planned, then written atomically,
        then applied. A refusal at any step leaves the file and the cameras as they were."""
        with self.edit_lock:
            path = self.config.path
            raw = read_raw(path)
            change(raw)
            text = yaml.safe_dump(raw, sort_keys=False)
            new = check_config(parse_raw(text, path), path)  # what a restart will read, not what we meant
            check_size(len(text.encode("utf-8")), new)
            plan = self._plan(new)
            atomic_write_text(os.path.realpath(path), text)  # a symlinked config: its target is written
            self._stamps = self._file_stamps(new)  # our own write is not a change to reload
            return self._apply(plan)

    def try_reload(self, why: str) -> None:
        """Reload for the watcher and SIGHUP: whatever goes wrong is one line, and the old config runs on."""
        try:
            changes = self.reload()
        except Exception as exc:  # the watcher must outlive any failure, a bug's included
            if isinstance(exc, ScreentimeError):
                log.error("config refused (%s), the running one kept: %s", why, exc)
            else:
                log.error("config reload failed (%s), the running one kept", why, exc_info=True)
            self._stamps = {p: _mtime(p) for p in self._stamps}  # not again until the file changes again
            return
        done = {k: v for k, v in changes.items() if v}
        log.info("config reloaded (%s): %s", why, done or "no change")

    # -- watching the file ------------------------------------------------------------------

    @staticmethod
    def _file_stamps(config: FleetConfig) -> dict[Path, float]:
        """The config's and every model's modification time: a change to any of them reloads."""
        return {p: _mtime(p) for p in [config.path, *(c.model for c in config.cameras.values())]}

    def watch_files(self, stop: threading.Event) -> None:
        while not stop.wait(WATCH_S):
            try:
                self._look()
            except Exception:  # never let the watcher die: hand edits and SIGHUP would go unheard
                log.error("config watch: an error, still watching", exc_info=True)

    def _look(self) -> None:
        if self.reload_requested.is_set():
            self.reload_requested.clear()
            self.try_reload("SIGHUP")
            return
        current = {p: _mtime(p) for p in self._stamps}
        if current != self._stamps:
            self._stamps = current
            self.try_reload("file changed")

    # -- the API's view ----------------------------------------------------------------------

    def outputs_down(self) -> list[str]:
        """One line per camera output that is not written (disk full, permissions ...)."""
        return [
            f"{name} {output}: {health.error}"
            for name, member in list(self.members.items())
            for output, health in member.outputs().items()
            if not health.ok
        ]

    def describe(self, name: str) -> dict | None:
        member = self.members.get(name)
        if member is None:
            return None
        cam, stats, today = member.camera, self.status.stats.get(member.tag.key), member.days.today
        return {
            "name": name,
            "url": cam.shown_url,
            "every_s": cam.every_s,
            "model": str(cam.model),
            "model_sha256": member.engine.current.sha256,
            **({"node": _node(member.remote)} if member.remote is not None else {}),
            "state": str(stats.state) if stats else "connecting",
            "samples": stats.samples if stats else 0,
            "reconnects": stats.reconnects if stats else 0,
            "today": today.to_dict() if today is not None else None,
            "last_sample": self.status.last.get(member.tag.key),
            "reports": str(member.days.directory),
            "outputs": {output: health.to_dict() for output, health in member.outputs().items()},
        }


def _checked(path: Path, engine: Engine) -> ModelFiles:
    """The model's files read once, and the one the engine was checked on among them (a file
    replaced meanwhile is refused: the next change to it reloads it)."""
    files = ModelFiles.read(path)
    if engine.sha256 not in files.sha256s:
        raise ModelError(f"{path}: replaced while it was being checked (the next change reloads it)")
    return files


def _node(remote: RemotePipeline) -> dict:
    """Where a cluster's camera runs now (`id` None while it is being placed)."""
    where = remote.where
    return {
        "id": where.node_id if where else None,
        "host": where.host if where else None,
        "epoch": remote.epoch,
        "moves": remote.moves,
        "refused_records": remote.refused,
    }


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


class _OutputsCollector(MetricsCollector):
    """`/metrics`: each camera's outputs, up or retrying, and their failed writes."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "screentime_output_writing", SPEC["screentime_output_writing"].help, labels=["source", "output"]
        )
        errors = CounterMetricFamily(
            "screentime_output_write_errors",
            SPEC["screentime_output_write_errors_total"].help,
            labels=["source", "output"],
        )
        for name, member in list(self.service.members.items()):
            for output, health in member.outputs().items():
                up.add_metric([name, output], float(health.ok))
                errors.add_metric([name, output], float(health.errors))
        yield up
        yield errors


class _PlacesCollector(MetricsCollector):
    """`/metrics` on a cluster: which node each camera runs on, how often it moved, what was refused."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        node = InfoMetricFamily(
            "screentime_camera_node", SPEC["screentime_camera_node_info"].help, labels=["source", "node", "host"]
        )
        moves, refused = family("screentime_camera_moves_total"), family("screentime_camera_refused_records_total")
        for name, member in list(self.service.members.items()):
            remote = member.remote
            if remote is None:
                continue
            where = remote.where  # read once: a worker lost meanwhile sets it to None
            if where is not None:
                node.add_metric([name, where.node_id, where.host], {})
            moves.add_metric([name], float(remote.moves))
            refused.add_metric([name], float(remote.refused))
        yield from (node, moves, refused)


def run_service(service: Service, server, stop: threading.Event) -> int:
    """The service in the foreground until `stop` (the CLI sets it on SIGTERM/SIGINT, and asks for
    reloads on SIGHUP); every camera's day file is written before it returns.

    A requested stop is exit 0 whatever the cameras' states (one that was down is not a failure
    of the service); a camera's last day file that could not be written is OutputError (exit 4)."""
    service.start()
    server.start()
    watcher = threading.Thread(target=service.watch_files, args=(stop,), name="config-watch", daemon=True)
    watcher.start()
    log.info("serving %d cameras; API on http://%s:%d/api/cameras", len(service.members), server.host, server.port)
    try:
        with service.holds:  # the event senders outlive every camera's last event
            for _tag, _prediction in service.run:
                pass
    except ScreentimeError as exc:
        if not stop.is_set():
            raise
        log.info("stopped; at the stop: %s", exc)
    finally:
        stop.set()
        server.stop()
    down = service.outputs_down()
    if down:
        raise OutputError("; ".join(down))
    return 0


__all__ = ["MaskSecrets", "Service", "run_service"]
