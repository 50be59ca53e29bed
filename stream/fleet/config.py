"""The service's one config file: YAML checked against a strict schema, each mistake one line.

    timezone: Europe/Paris            # the day's midnight (default: this machine's zone)
    http: {host: 127.0.0.1, port: 8770, token: "${SCREENTIME_TOKEN}"}
    defaults: {model: model.onnx, every: 1, reports: reports}
    cameras:
      door: {url: "rtsp://cam:${DOOR_PASSWORD}@10.0.0.5/stream"}
      yard: {url: rtsp://10.0.0.6/stream, every: 2, collect: {dir: collected, per_hour: 10}}

A camera's settings are its own over `defaults:`. Strings may name environment variables
(`${VAR}`): they are expanded only where the value is used (a URL opened, a password sent) and
shown everywhere else as written, so a secret never reaches a log line, a metric label or a
report. Relative paths are relative to the config file's directory (a service's working
directory is wherever its supervisor put it).

It runs past 300 lines because the schema, its one-line error messages and the `${VAR}`
expansion are one contract with the person editing the file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from stream.defaults import (
    CHECKPOINT_S,
    COLLECT_MAX_MARGIN,
    COLLECT_MAX_MB,
    COLLECT_PER_DAY,
    COLLECT_PER_HOUR,
    CONFIG_READ_MAX_BYTES,
    EVERY_S,
    LIMIT_BODY_BYTES,
    LIMIT_CAMERAS,
    LIMIT_CONFIG_BYTES,
    LIMIT_JSON_DEPTH,
    SERVE_HOST,
    SERVE_PORT,
    SERVE_SEGMENT_MINUTES,
    DeviceName,
)
from stream.errors import BadInputError
from stream.options import WATCH_OPTIONS, Option
from stream.settings import SourceSettings
from stream.sources.urls import mask_url

HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # a directory, a metric label, an MQTT topic level, a URL part
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

DAY_S = 86_400.0
# Every number finite and bounded, every string bounded: what the schema accepts, a restart runs.
Positive = Annotated[float, Field(gt=0, le=DAY_S)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
Text = Annotated[str, Field(min_length=1, max_length=4096)]
Url = Annotated[str, Field(min_length=1, max_length=2048)]
HostName = Annotated[str, Field(min_length=1, max_length=253)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Http(_Strict):
    host: HostName = SERVE_HOST
    port: Annotated[int, Field(ge=0, le=65535)] = SERVE_PORT  # 0: any free port (tests)
    token: Annotated[str, Field(max_length=256)] | None = None  # "${VAR}": required when host is beyond loopback
    # Names this service may be reached by, beside its address, localhost and loopback addresses
    # (a reverse proxy's name): any other Host header is refused (DNS rebinding).
    hosts: Annotated[list[HostName], Field(max_length=64)] = []

    @field_validator("token")
    @classmethod
    def _from_environment(cls, value: str | None) -> str | None:
        if value is not None and not VARIABLE.fullmatch(value.strip()):
            raise ValueError("must come from the environment, written as ${VARIABLE} (the file is not a secret)")
        return value

    @field_validator("hosts")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not HOST_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a host name (letters, digits, '-', '.'; no port)")
        return [name.lower() for name in value]


class Limits(_Strict):
    """What one service takes at most: beyond it a request or a file is refused, naming the limit."""

    cameras: Annotated[int, Field(ge=1, le=10_000)] = LIMIT_CAMERAS
    body_bytes: Annotated[int, Field(ge=1024, le=64_000_000)] = LIMIT_BODY_BYTES  # one API request
    json_depth: Annotated[int, Field(ge=2, le=64)] = LIMIT_JSON_DEPTH  # nesting of one API request
    config_bytes: Annotated[int, Field(ge=1024, le=CONFIG_READ_MAX_BYTES)] = LIMIT_CONFIG_BYTES


class Overlay(_Strict):
    dir: Text
    segment_minutes: Annotated[float, Field(ge=0, le=DAY_S / 60)] = SERVE_SEGMENT_MINUTES


class Collect(_Strict):
    dir: Text
    per_hour: Count = COLLECT_PER_HOUR
    per_day: Count = COLLECT_PER_DAY
    max_mb: Positive = COLLECT_MAX_MB  # the whole DIR/NAME/ folder
    max_margin: Annotated[float, Field(gt=0, le=1)] = COLLECT_MAX_MARGIN  # only samples at most this sure


class Place(_Strict):
    """What a camera's worker takes of a cluster node (`cluster:` only): Ray's scheduler puts it
    on a node with that much free; a custom resource pins it to the nodes that declare it."""

    cpus: Annotated[float, Field(ge=0, le=1024)] = 1.0
    gpus: Annotated[float, Field(ge=0, le=64)] = 0.0
    custom: Annotated[dict[str, Annotated[float, Field(gt=0, le=1_000_000)]], Field(max_length=16)] = {}

    @field_validator("custom")
    @classmethod
    def _names(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            if not NAME.fullmatch(name) or name in ("CPU", "GPU", "memory"):
                raise ValueError(f"{name!r}: a custom resource is letters, digits, '-' and '_' (not CPU, GPU)")
        return value


class ClusterFile(_Strict):
    """`cluster:`: the Ray cluster the cameras run on (README: A fleet on a cluster)."""

    address: Annotated[str, Field(min_length=1, max_length=300)]

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if value != "auto" and not (HOST_NAME.fullmatch(host) and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError("the Ray head's HOST:PORT (as `ray start --head` prints it), or auto")
        return value


# What `watch` sets per source that a camera sets too (`Option.camera`), under the option's name:
# declared once, in stream.options (flag, key, default, help), bounded once, by SourceSettings.
CAMERA_OPTIONS = tuple(o for o in WATCH_OPTIONS if o.camera)


def _schema(option: Option) -> object:
    """A camera option's schema: its type, finite and loosely bounded (the exact bounds are
    SourceSettings', checked when the camera is resolved)."""
    if option.type is int:
        return Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)] | None
    if option.type is float:
        return Annotated[float, Field(ge=-1e9, le=1e9)] | None
    return Annotated[str, Field(min_length=1, max_length=256)] | None


class _Settings(_Strict):
    """What `defaults:` may set, and each camera over it (and CAMERA_OPTIONS)."""

    model: Text | None = None
    every: Positive | None = None
    reports: Text | None = None
    device: DeviceName | None = None  # the choices, declared once: stream.defaults
    overlay: Overlay | None = None
    mqtt: Url | None = None
    webhook: Url | None = None
    collect: Collect | None = None
    resources: Place | None = None  # on a cluster: what its worker takes of a node


if TYPE_CHECKING:
    Settings = _Settings
else:
    Settings = create_model("Settings", __base__=_Settings, **{o.name: (_schema(o), None) for o in CAMERA_OPTIONS})


class CameraSettings(Settings):
    url: Url


class FleetFile(_Strict):
    timezone: Annotated[str, Field(max_length=64)] | None = None
    checkpoint: Annotated[float, Field(gt=0, le=3600)] = CHECKPOINT_S  # seconds between rewrites of today's day file
    http: Http = Http()
    cluster: ClusterFile | None = None
    limits: Limits = field(default_factory=Limits)
    defaults: Settings = Settings()
    cameras: dict[str, CameraSettings] = {}

    @field_validator("cameras", mode="before")
    @classmethod
    def _none_yet(cls, value: object) -> object:
        return {} if value is None else value  # `cameras:` with nothing under it: none yet

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Paris)") from None
        return value


@dataclass(frozen=True)
class Camera:
    """One camera's settings, resolved: defaults applied, paths absolute, secrets still `${VAR}`."""

    name: str
    url: str  # as written: `${VAR}` unexpanded (use `source()` to open it)
    model: Path
    every_s: float
    reports: Path
    device: str
    overlay: Overlay | None
    mqtt: str | None
    webhook: str | None
    collect: Collect | None
    source_options: tuple[tuple[str, object], ...] = ()  # the CAMERA_OPTIONS it sets, as `watch` sets them
    resources: Place = field(default_factory=Place)

    def settings(self, checkpoint_s: float) -> SourceSettings:
        """What the run hands down to this camera's source, pipeline and reader (a fleet's camera
        reconnects for ever; with an overlay it decodes every frame)."""
        return SourceSettings(
            every_s=self.every_s,
            checkpoint_s=checkpoint_s,
            every_frame=self.overlay is not None,
            **dict(self.source_options),  # type: ignore[arg-type]
        )

    @property
    def shown_url(self) -> str:
        """The URL for logs, labels and reports: `${VAR}` as written, any literal password masked."""
        return mask_url(self.url)

    def source(self, environ: Mapping[str, str] | None = None) -> str:
        """The URL to open, secrets expanded."""
        return expand(self.url, f"cameras.{self.name}.url", environ)


@dataclass(frozen=True)
class FleetConfig:
    path: Path
    timezone: ZoneInfo
    host: str
    port: int
    token: str | None  # expanded; never logged
    cameras: dict[str, Camera]
    checkpoint_s: float
    raw: dict  # the file as read (`${VAR}` unexpanded): what the API writes back
    hosts: tuple[str, ...] = ()  # http.hosts: names besides the address the service answers to
    limits: Limits = field(default_factory=Limits)
    cluster: str | None = None  # cluster.address: the cameras run on that Ray cluster

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def secrets(self, environ: Mapping[str, str] | None = None) -> set[str]:
        """Every expanded `${VAR}` value the file uses: what a log filter must hide."""
        env = os.environ if environ is None else environ
        return {env[v] for v in VARIABLE.findall(yaml.safe_dump(self.raw)) if env.get(v)}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def expand(value: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """`${VAR}` replaced by the environment's value; an unset variable is an error naming `where`."""
    env = os.environ if environ is None else environ

    def one(match: re.Match) -> str:
        if match.group(1) not in env:
            raise BadInputError(f"{where}: environment variable {match.group(1)} is not set")
        return env[match.group(1)]

    return VARIABLE.sub(one, value)


def local_zone() -> ZoneInfo:
    """This machine's time zone by name (DST rules included; a fixed UTC offset would be wrong half
    the year): $TZ, else the /etc/localtime link, else /etc/timezone, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


# --- reading ---------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a second camera `door` must be an error.
    Aliases are refused: they make a graph of the tree, where a few lines can stand for 2**30
    values (a "billion laughs")."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise _Alias(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _Duplicate(key, key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class _Alias(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _Duplicate(Exception):
    def __init__(self, key: object, line: int) -> None:
        self.key, self.line = key, line


def read_raw(path: Path) -> dict:
    """The file as a mapping, or one line saying why not (never read past CONFIG_READ_MAX_BYTES)."""
    try:
        size = Path(path).stat().st_size
        if size > CONFIG_READ_MAX_BYTES:
            raise BadInputError(f"{path}: {size} bytes, more than a config file may be ({CONFIG_READ_MAX_BYTES})")
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return parse_raw(text, path)


def parse_raw(text: str, path: Path) -> dict:
    """A config's text as a mapping, or one line saying why not."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except _Alias as alias:
        raise BadInputError(f"{path}:{alias.line}: YAML aliases (*name) are not allowed (use defaults:)") from None
    except _Duplicate as dup:
        raise BadInputError(f"{path}:{dup.line}: {dup.key}: duplicate key (camera names must differ)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise BadInputError(f"{where}: not YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a mapping of timezone, http, defaults, cameras")
    return data


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> FleetConfig:
    """Read and check the file; raise BadInputError (exit 2) naming the first bad key."""
    path = Path(path)
    raw = read_raw(path)
    config = check_config(raw, path, environ)
    check_size(path.stat().st_size, config)
    return config


def check_size(size: int, config: FleetConfig) -> None:
    """The file within `limits.config_bytes` (also what the API is about to write)."""
    if size > config.limits.config_bytes:
        raise BadInputError(
            f"{config.path}: limits.config_bytes: the file would be {size} bytes (at most {config.limits.config_bytes})"
        )


def check_config(raw: dict, path: Path, environ: Mapping[str, str] | None = None) -> FleetConfig:
    """`raw` (a parsed file, or one the API is about to write) checked and resolved."""
    try:
        parsed = FleetFile.model_validate(raw)
    except ValidationError as exc:
        raise BadInputError(f"{path}: {first_problem(exc)}") from None
    base = path.parent
    if len(parsed.cameras) > parsed.limits.cameras:
        raise BadInputError(
            f"{path}: cameras: {len(parsed.cameras)} cameras, more than limits.cameras ({parsed.limits.cameras})"
        )
    cameras = {}
    for name, cam in parsed.cameras.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise BadInputError(f"{path}: cameras.{name}: a name is letters, digits, '-' and '_' (at most 64)")
        cameras[name] = _resolve(name, cam, parsed.defaults, base, path, environ)
    http = parsed.http
    token = expand(http.token, "http.token", environ) if http.token else None
    if not is_loopback(http.host) and not token:
        raise BadInputError(
            f"{path}: http.token: required when http.host ({http.host}) is beyond loopback (token: ${{VARIABLE}})"
        )
    zone = ZoneInfo(parsed.timezone) if parsed.timezone else local_zone()
    cluster = parsed.cluster.address if parsed.cluster else None
    return FleetConfig(
        path,
        zone,
        http.host,
        http.port,
        token,
        cameras,
        parsed.checkpoint,
        raw,
        tuple(http.hosts),
        parsed.limits,
        cluster,
    )


def _resolve(
    name: str, cam: CameraSettings, defaults: Settings, base: Path, path: Path, environ: Mapping[str, str] | None
) -> Camera:
    def pick(key: str):
        own = getattr(cam, key)
        return own if own is not None else getattr(defaults, key)

    where = f"cameras.{name}"
    model = pick("model")
    if model is None:
        raise BadInputError(f"{path}: {where}.model: missing (and no defaults.model)")
    model_path = _path(base, model)
    if not model_path.is_file():
        raise BadInputError(f"{path}: {where}.model: no such file {model_path}")
    for key in ("url", "mqtt", "webhook"):  # every variable set now, not when the camera first reconnects
        value = getattr(cam, key) if key == "url" else pick(key)
        if value:
            _check_url(key, expand(value, f"{path}: {where}.{key}", environ), f"{path}: {where}.{key}")
    # the URL that would be opened, not the one shown: the checks' messages never quote it
    options = {o.name: pick(o.name) for o in CAMERA_OPTIONS if pick(o.name) is not None}
    for option in CAMERA_OPTIONS:
        if option.name in options:
            try:
                SourceSettings(**{option.name: options[option.name]})  # checked as `watch` checks its flag
            except BadInputError as exc:
                problem = str(exc).split(": ", 1)[-1].removeprefix(f"{option.flag} ")
                raise BadInputError(f"{path}: {where}.{option.name}: {problem}") from None
    collect, overlay = pick("collect"), pick("overlay")
    if collect is not None:
        collect = collect.model_copy(update={"dir": str(_path(base, collect.dir))})
    if overlay is not None:
        overlay = overlay.model_copy(update={"dir": str(_path(base, overlay.dir))})
    return Camera(
        name=name,
        url=cam.url,
        model=model_path,
        every_s=pick("every") or EVERY_S,
        reports=_path(base, pick("reports") or "reports"),
        device=pick("device") or "auto",
        overlay=overlay,
        mqtt=pick("mqtt"),
        webhook=pick("webhook"),
        collect=collect,
        source_options=tuple(sorted(options.items())),
        resources=pick("resources") or Place(),
    )


def _check_url(key: str, url: str, where: str) -> None:
    """A camera's URL checked as FFmpeg would parse it (a known scheme, a host, a port in 1-65535,
    no spaces or control characters); MQTT and webhook URLs as `watch --mqtt/--webhook` checks
    them. The message never quotes the URL: it is expanded, so it may hold a secret."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise BadInputError(f"{where}: spaces or control characters in a URL")
    try:
        if key == "url":
            check_camera_url(url)
        elif key == "mqtt":
            from stream.outputs.mqtt import MqttTarget

            MqttTarget.parse(url)
        elif key == "webhook":
            from stream.outputs.webhook import check_webhook_url

            check_webhook_url(url)
    except BadInputError as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise BadInputError(f"{where}: {detail}") from None
    except ValueError as exc:  # urllib's own: a port out of range, a bad IPv6 literal
        raise BadInputError(f"{where}: {exc}") from None


def check_camera_url(url: str) -> None:
    """A file path, a webcam index, or a URL this build can open with a host and a valid port."""
    if "://" not in url:
        return  # a file or a webcam: the source says so when it opens
    from stream.sources.probe import check_scheme

    scheme = check_scheme(url)  # a scheme this build's FFmpeg reads
    if scheme == "file":
        return
    parts = urlsplit(url)
    if not parts.hostname:
        raise BadInputError("no host in the URL")
    try:
        port = parts.port  # urllib raises for a port out of 0-65535 or not a number
    except ValueError:
        raise BadInputError("port out of range 1-65535") from None
    if port == 0:  # urllib takes 0; no camera listens there
        raise BadInputError("port 0 (a port is 1-65535)")


def _path(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


PROBLEMS = {
    "missing": "missing",
    "extra_forbidden": "unknown key",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
}


def first_problem(exc: ValidationError) -> str:
    """pydantic's first error as `cameras.yard.every: must be > 0` (never the value: it may be a secret)."""
    errors = exc.errors(include_input=False, include_url=False)
    error = errors[0]
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    template = PROBLEMS.get(error["type"])
    if template is not None:
        problem = template.format(**{k: f"{v:g}" for k, v in (error.get("ctx") or {}).items()})
    else:
        problem = error["msg"].removeprefix("Value error, ")
        problem = problem[0].lower() + problem[1:]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{key}: {problem}{more}"


API_PATHS = ("model", "reports", "collect.dir", "overlay.dir")


def check_api_camera(name: str, body: dict) -> None:
    """What a camera sent through the API may hold, beyond the schema: literal values only (the
    environment is the operator's file's: a page could otherwise have a `${SECRET}` sent to any
    address) and paths inside the config's folder (a request never makes the service read or
    write elsewhere). BadInputError naming the key."""
    if not NAME.fullmatch(name):
        raise BadInputError("name: letters, digits, '-' and '_' (at most 64)")

    def walk(value: object, where: str) -> None:
        if isinstance(value, str) and "${" in value:
            raise BadInputError(
                f"cameras.{name}.{where}: ${{VARIABLE}} is expanded only in the config file as its operator "
                "wrote it; through the API values are literal"
            )
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{where}.{key}")
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{where}.{i}")

    for key, value in body.items():
        walk(value, str(key))
    for where in API_PATHS:
        found: object = body
        for part in where.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if isinstance(found, str) and (found.startswith("~") or Path(found).is_absolute() or ".." in Path(found).parts):
            raise BadInputError(
                f"cameras.{name}.{where}: through the API a path stays inside the config's folder (relative, no '..')"
            )
