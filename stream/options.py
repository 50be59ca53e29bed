"""Every option of `watch`, declared once: its keyword, flag, type, default and help.

Its configs live here too (`WatchConfig`, `MonitorConfig`, their validation), so the CLI can
build one without importing the run's machinery; that is why this module runs past 300 lines.

The CLI's flags (`add_watch_flags`) and the Python API's keywords (`watch(source, model,
**options)`, checked by `check_names`) are both made from `WATCH_OPTIONS`, and `watch_config`
turns option values into the one `WatchConfig`, whoever gave them. Defaults come from
`stream.defaults`; a help text names its default through `{default}`.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from stream import defaults
from stream.defaults import (
    METRICS_HOST,
    MQTT_UPDATE_S,
    SEGMENT_MINUTES,
    VIEW_FPS,
    VIEW_HOST,
)
from stream.errors import BadInputError
from stream.frames.preprocess import SKIP_SIMILAR_DEFAULT
from stream.frames.sampler import interval_from
from stream.outputs.atomic import check_writable
from stream.settings import RTSP_TRANSPORTS, SourceSettings

DEVICES = defaults.DEVICES
PRECISIONS = ("auto", "fp32", "int8")  # auto: the INT8 twin on CPU when there is one
RTSP_BACKENDS = defaults.RTSP_BACKENDS


@dataclass(frozen=True)
class Option:
    """One option: `name` is the API keyword (and the parsed flag's dest), `flag` the CLI's."""

    name: str
    flag: str
    default: Any
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    switch: bool = False  # a flag without a value: True when given
    exclusive: str = ""  # flags sharing a non-empty value exclude each other
    group: str = ""  # the help section it is listed under
    camera: bool = False  # a fleet camera sets it too, under `name` (stream.fleet.config), for its source

    def help_text(self) -> str:
        shown = self.default if not isinstance(self.default, float) else f"{self.default:g}"
        return self.help.format(default=shown)


WATCH_OPTIONS: tuple[Option, ...] = (
    Option(
        "every_s",
        "--every",
        None,
        f"seconds between analysed frames (default {defaults.EVERY_S:g})",
        float,
        exclusive="rate",
    ),
    Option("fps", "--fps", None, "analysed frames per second", float, exclusive="rate"),
    Option("report", "--report", None, "JSON report", Path),
    Option("csv", "--csv", None, "timeline CSV", Path),
    Option("output", "--output", None, "overlaid video (.mp4)", Path),
    Option("device", "--device", "auto", "where the model runs ({default})", choices=DEVICES),
    Option(
        "duration_s", "--duration", None, "stop after this many seconds (media time for files, wall clock live)", float
    ),
    Option("max_reconnects", "--max-reconnects", None, "give up after N failed reconnects", int, exclusive="retry"),
    Option(
        "rtsp_transport",
        "--rtsp-transport",
        defaults.RTSP_TRANSPORT,
        "({default})",
        choices=RTSP_TRANSPORTS,
        camera=True,
    ),
    Option(
        "rtsp_backend",
        "--rtsp-backend",
        defaults.RTSP_BACKEND,
        "who decodes rtsp:// cameras: pyav only the frames samples need, opencv all ({default})",
        choices=RTSP_BACKENDS,
        camera=True,
    ),
    Option(
        "timeout_s",
        "--timeout",
        defaults.TIMEOUT_S,
        "seconds without a frame before a stream counts as lost ({default})",
        float,
        camera=True,
    ),
    Option(
        "open_timeout_s",
        "--open-timeout",
        defaults.OPEN_TIMEOUT_S,
        "seconds to wait for a stream's first picture: one keyframe interval ({default})",
        float,
        camera=True,
    ),
    Option(
        "checkpoint_s",
        "--checkpoint",
        defaults.CHECKPOINT_S,
        "rewrite the report every SECONDS during the run ({default})",
        float,
        metavar="SECONDS",
    ),
    Option(
        "segment_minutes",
        "--segment-minutes",
        defaults.SEGMENT_MINUTES,
        "live overlay: start OUT-0001.mp4, OUT-0002.mp4 ... every N minutes (default 0: one file)",
        float,
        metavar="N",
    ),
    Option("resume", "--resume", False, "carry on the totals of the --report left by an earlier run", switch=True),
    Option(
        "precision",
        "--precision",
        "auto",
        "auto: MODEL.int8.onnx beside the model on CPU, else fp32",
        choices=PRECISIONS,
    ),
    Option(
        "skip_similar",
        "--skip-similar",
        SKIP_SIMILAR_DEFAULT,
        "reuse the last result for a frame this close to it (mean grey levels; 0: off; {default})",
        float,
        metavar="LEVELS",
        camera=True,
    ),
    Option(
        "smoothing",
        "--smooth",
        None,
        "average the last N samples (0: off; default: the model's)",
        int,
        metavar="N",
        camera=True,
    ),
    Option(
        "view_port",
        "--view-port",
        None,
        "watch the overlaid picture in a browser at http://HOST:PORT/ (MJPEG; 0: any free port)",
        int,
        metavar="PORT",
    ),
    Option("view_host", "--view-host", defaults.VIEW_HOST, "live view: address to listen on ({default})"),
    Option(
        "view_fps",
        "--view-fps",
        defaults.VIEW_FPS,
        "live view: at most this many pictures a second per source ({default})",
        float,
    ),
    Option(
        "batch_size",
        "--batch-size",
        defaults.BATCH_SIZE,
        "sampled frames per inference call on files ({default})",
        int,
        metavar="N",
    ),
    Option(
        "name",
        "--name",
        None,
        "a name per source for metrics and MQTT (repeat, or a comma list; default: masked URL or file name)",
        metavar="NAME",
        group="monitoring",
    ),
    Option(
        "metrics_port",
        "--metrics-port",
        None,
        "serve Prometheus /metrics here",
        int,
        metavar="PORT",
        group="monitoring",
    ),
    Option(
        "metrics_host",
        "--metrics-host",
        defaults.METRICS_HOST,
        "({default}; 0.0.0.0: all)",
        metavar="HOST",
        group="monitoring",
    ),
    Option(
        "mqtt",
        "--mqtt",
        None,
        f"publish events to mqtt://[user:pass@]host[:port][/prefix] (prefix {defaults.MQTT_PREFIX})",
        metavar="URL",
        group="monitoring",
    ),
    Option(
        "mqtt_update_s",
        "--mqtt-update",
        defaults.MQTT_UPDATE_S,
        "at most one `update` event (and totals) per source every SECONDS ({default})",
        float,
        metavar="SECONDS",
        group="monitoring",
    ),
    Option(
        "min_segment_s",
        "--min-segment",
        None,
        "announce a character only once seen this long (default: one sample interval)",
        float,
        metavar="SECONDS",
        group="monitoring",
    ),
    Option("webhook", "--webhook", None, "POST each event's JSON here", metavar="URL", group="monitoring"),
    Option(
        "crop",
        "--crop",
        defaults.CROP,
        "black bars cut before the model sees a frame: found per source (auto), none, or a fixed area "
        "W:H:X:Y ({default})",
        metavar="auto|none|W:H:X:Y",
        camera=True,
    ),
    Option(
        "dashboard", "--dashboard", False, "the live terminal dashboard (the CLI's default on a terminal)", switch=True
    ),
)
OPTIONS = {o.name: o for o in WATCH_OPTIONS}
CLI_ONLY = {"no_dashboard", "no_retry"}  # flags that only the CLI has: they turn a default off


@dataclass(frozen=True)
class MonitorConfig:
    """The monitoring flags of `screentime watch`."""

    names: tuple[str, ...] = ()  # one per source; empty: the masked URL or file name
    metrics_port: int | None = None
    metrics_host: str = METRICS_HOST
    mqtt: str | None = None  # mqtt://[user:pass@]host[:port][/prefix]
    mqtt_update_s: float = MQTT_UPDATE_S
    min_segment_s: float | None = None  # None: one sample interval
    webhook: str | None = None

    def validate(self, sources: int) -> None:
        if self.names and len(self.names) != sources:
            raise BadInputError(f"--name: {len(self.names)} names for {sources} sources (give one per source)")
        if len(set(self.names)) != len(self.names):
            raise BadInputError("--name: every source needs its own name")
        for name in self.names:
            if not name or any(c in name for c in "/+#") or not name.isprintable():
                raise BadInputError(f"--name {name!r}: no '/', '+', '#' or control characters (an MQTT topic level)")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise BadInputError(f"--metrics-port must be 0-65535, got {self.metrics_port}")
        if self.mqtt_update_s < 0:
            raise BadInputError("--mqtt-update must be >= 0")
        if self.min_segment_s is not None and self.min_segment_s < 0:
            raise BadInputError("--min-segment must be >= 0")
        if self.mqtt is not None:
            from stream.outputs.mqtt import MqttTarget

            MqttTarget.parse(self.mqtt)
        if self.webhook is not None:
            from stream.outputs.webhook import check_webhook_url

            check_webhook_url(self.webhook)


def split_names(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """`--name a --name b` or `--name a,b`."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(part.strip() for value in values for part in value.split(","))


@dataclass
class WatchConfig:
    """The flags of `screentime watch`, validated once at the edge (made by `stream.options.watch_config`
    from the options' one declaration, whether they came from the CLI or the API)."""

    sources: list[str]
    model: Path
    source: SourceSettings = field(default_factory=SourceSettings)  # every source's (stream.settings)
    report: Path | None = None
    csv: Path | None = None
    output: Path | None = None
    dashboard: bool = False
    device: str = "auto"
    resume: bool = False  # carry on the totals of the report already at `report`
    segment_minutes: float = SEGMENT_MINUTES  # live overlay: a new OUT-0001.mp4 ... every N minutes (0: one file)
    precision: str = "auto"  # auto: the INT8 twin on CPU when there is one; fp32; int8
    view_port: int | None = None  # live view in a browser (MJPEG over HTTP) on this port; 0: any free port
    view_host: str = VIEW_HOST
    view_fps: float = VIEW_FPS
    monitor: MonitorConfig = field(default_factory=MonitorConfig)  # --name, --metrics-port, --mqtt ...

    @property
    def every_s(self) -> float:
        return self.source.every_s

    def settings(self, overlay: bool) -> SourceSettings:
        """One source's settings: `overlay`, it writes an overlay video (so it needs every frame)."""
        view_every_s = 1 / self.view_fps if self.view_port is not None else None
        return replace(self.source, every_frame=overlay, view_every_s=view_every_s)

    def output_paths(self) -> list[Path | None]:
        """One overlay video per source: OUT.mp4 for one source, OUT-1.mp4, OUT-2.mp4 ... for several."""
        if self.output is None:
            return [None] * len(self.sources)
        if len(self.sources) == 1:
            return [self.output]
        return [
            self.output.with_name(f"{self.output.stem}-{i}{self.output.suffix}")
            for i in range(1, len(self.sources) + 1)
        ]

    def validate(self) -> None:
        """Every output path is checked before any work starts, so a run is never wasted."""
        if not self.sources:
            raise BadInputError("give at least one source")
        if self.segment_minutes < 0:
            raise BadInputError("--segment-minutes must be >= 0")
        if self.resume and self.report is None:
            raise BadInputError("--resume needs --report (the report whose totals to carry on)")
        if self.view_port is not None and not 0 <= self.view_port <= 65535:
            raise BadInputError("--view-port must be 0-65535")
        if self.view_fps <= 0:
            raise BadInputError("--view-fps must be > 0")
        if self.output is not None and self.output.suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise BadInputError(f"{self.output}: the overlay video must be .mp4, .mov or .mkv")
        self.monitor.validate(len(self.sources))
        for path in (self.report, self.csv, *self.output_paths()):
            if path is None:
                continue
            try:
                check_writable(path)
            except OSError as exc:
                raise BadInputError(f"{path}: cannot write ({exc})") from None


def add_watch_flags(parser: argparse.ArgumentParser) -> None:
    """`watch`'s flags, from the declaration (the CLI adds --no-dashboard and --no-retry)."""
    groups: dict[str, Any] = {}
    for option in WATCH_OPTIONS:
        if option.name == "dashboard":
            continue  # the CLI's default depends on the terminal: see --no-dashboard
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group) if option.group else parser
        target = groups[option.group]
        if option.exclusive:
            key = f"exclusive:{option.exclusive}"
            if key not in groups:
                groups[key] = target.add_mutually_exclusive_group()
            target = groups[key]
        kwargs: dict[str, Any] = {"dest": option.name, "help": option.help_text()}
        if option.switch:
            target.add_argument(option.flag, action="store_true", **kwargs)
            continue
        kwargs["default"] = option.default
        if option.name == "name":
            kwargs["action"] = "append"
        for key in ("type", "choices"):
            if getattr(option, key) is not None:
                kwargs[key] = getattr(option, key)
        if option.choices is None:
            kwargs["metavar"] = option.metavar or option.flag.lstrip("-").upper().replace("-", "_")
        target.add_argument(option.flag, **kwargs)
    parser.add_argument("--no-dashboard", action="store_true", help="no live dashboard, even on a terminal")
    groups["exclusive:retry"].add_argument(
        "--no-retry", action="store_true", help="fail at once if a stream is unreachable"
    )


def check_names(given: Mapping[str, Any]) -> None:
    """Refuse an option `watch` does not have, naming it (and the option meant, if close)."""
    for key in given:
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BadInputError(f"watch() has no option {key!r}{hint}")


def watch_config(sources: list[str], model: str | Path, values: Mapping[str, Any]) -> WatchConfig:
    """Option values (API keywords; the others take their declared defaults) -> the config."""
    check_names(values)
    v = {name: option.default for name, option in OPTIONS.items()} | dict(values)

    paths = {"report", "csv", "output"}
    given = {f.name: v[f.name] for f in fields(WatchConfig) if f.name in OPTIONS}
    given.update({key: Path(v[key]) if v[key] else None for key in paths})
    monitor = {f.name: v[f.name] for f in fields(MonitorConfig) if f.name in OPTIONS}
    per_source = {f.name: v[f.name] for f in fields(SourceSettings) if f.name in OPTIONS and f.name != "every_s"}
    source = SourceSettings(every_s=interval_from(v["every_s"], v["fps"]), **per_source)  # checked here, once
    return WatchConfig(
        sources=sources,
        model=Path(model),
        source=source,
        monitor=MonitorConfig(names=split_names(v["name"]), **monitor),
        **given,
    )


def from_args(args: argparse.Namespace, terminal: bool) -> WatchConfig:
    """The parsed `watch` flags -> the config (`terminal`: stdout is one, so the dashboard is on)."""
    values = {name: getattr(args, name) for name in OPTIONS if name != "dashboard"}
    values["dashboard"] = terminal and not args.no_dashboard
    if args.no_retry:
        values["max_reconnects"] = 0
    return watch_config(list(args.source), args.model, values)
