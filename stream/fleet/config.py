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
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stream.defaults import (
    CHECKPOINT_S,
    COLLECT_MAX_MARGIN,
    COLLECT_MAX_MB,
    COLLECT_PER_DAY,
    COLLECT_PER_HOUR,
    DEVICES,
    EVERY_S,
    SERVE_HOST,
    SERVE_PORT,
    SERVE_SEGMENT_MINUTES,
)
from stream.errors import BadInputError
from stream.urls import mask_url

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # a directory, a metric label, an MQTT topic level, a URL part
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Http(_Strict):
    host: str = SERVE_HOST
    port: Annotated[int, Field(ge=0, le=65535)] = SERVE_PORT
    token: str | None = None  # "${VAR}": required when host is beyond loopback

    @field_validator("token")
    @classmethod
    def _from_environment(cls, value: str | None) -> str | None:
        if value is not None and not VARIABLE.fullmatch(value.strip()):
            raise ValueError("must come from the environment, written as ${VARIABLE} (the file is not a secret)")
        return value


class Overlay(_Strict):
    dir: str
    segment_minutes: Annotated[float, Field(ge=0)] = SERVE_SEGMENT_MINUTES


class Collect(_Strict):
    dir: str
    per_hour: Count = COLLECT_PER_HOUR
    per_day: Count = COLLECT_PER_DAY
    max_mb: Positive = COLLECT_MAX_MB  # the whole DIR/NAME/ folder
    max_margin: Annotated[float, Field(gt=0, le=1)] = COLLECT_MAX_MARGIN  # only samples at most this sure


class Settings(_Strict):
    """What `defaults:` may set, and each camera over it."""

    model: str | None = None
    every: Positive | None = None
    reports: str | None = None
    device: Literal[DEVICES] | None = None  # one declaration of the choices: stream.defaults
    overlay: Overlay | None = None
    mqtt: str | None = None
    webhook: str | None = None
    collect: Collect | None = None


class CameraSettings(Settings):
    url: str


class FleetFile(_Strict):
    timezone: str | None = None
    checkpoint: Positive = CHECKPOINT_S  # seconds between rewrites of today's day file
    http: Http = Http()
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
    """PyYAML keeps the last of two equal keys silently; a second camera `door` must be an error."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _Duplicate(key, key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class _Duplicate(Exception):
    def __init__(self, key: object, line: int) -> None:
        self.key, self.line = key, line


def read_raw(path: Path) -> dict:
    """The file as a mapping, or one line saying why not."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
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
    return check_config(raw, path, environ)


def check_config(raw: dict, path: Path, environ: Mapping[str, str] | None = None) -> FleetConfig:
    """`raw` (a parsed file, or one the API is about to write) checked and resolved."""
    try:
        parsed = FleetFile.model_validate(raw)
    except ValidationError as exc:
        raise BadInputError(f"{path}: {first_problem(exc)}") from None
    base = path.parent
    cameras = {}
    for name, cam in parsed.cameras.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise BadInputError(f"{path}: cameras.{name}: a name is letters, digits, '-' and '_' (at most 64)")
        cameras[name] = _resolve(name, cam, parsed.defaults, base, path, environ)
    http = parsed.http
    token = expand(http.token, "http.token", environ) if http.token else None
    if not is_loopback(http.host) and not token:
        raise BadInputError(
            f"{path}: http.token: required when http.host ({http.host}) is beyond loopback (token: ${{VARIABLE}})"
        )
    zone = ZoneInfo(parsed.timezone) if parsed.timezone else local_zone()
    return FleetConfig(path, zone, http.host, http.port, token, cameras, parsed.checkpoint, raw)


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
    )


def _check_url(key: str, url: str, where: str) -> None:
    """MQTT and webhook URLs checked as `watch --mqtt/--webhook` checks them (message masked)."""
    try:
        if key == "mqtt":
            from stream.sinks.mqtt import MqttTarget

            MqttTarget.parse(url)
        elif key == "webhook":
            from stream.sinks.webhook import check_webhook_url

            check_webhook_url(url)
    except BadInputError as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise BadInputError(f"{where}: {detail}") from None


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
