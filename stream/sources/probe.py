"""What a SOURCE argument names, asked once before anything starts: a file, a finite web file, or
a live stream; and what cannot be read at all, said up front as one line.

- a URL scheme this build's FFmpeg has no protocol for (SRT is not in the PyAV wheels) or that
  no one knows is bad input (exit 2), never "unreachable; retry" forever;
- an `http(s)://` URL answers what it is: a file the server sends with a length, or an HLS
  playlist that ends (`#EXT-X-ENDLIST`), is a recording (media time, sparse decoding, a progress
  bar, the same report as the downloaded file); a stream without a length, MJPEG
  (`multipart/x-mixed-replace`) or a playlist that grows is live. 401/403/404 are named.
A server that cannot be reached at all is taken for a live stream, which retries (or not,
with `--no-retry`).
"""

from __future__ import annotations

import base64
import ctypes
import functools
import glob
import logging
import os
import urllib.error
import urllib.request
from enum import StrEnum
from urllib.parse import urljoin, urlsplit, urlunsplit

from stream.errors import BadInputError
from stream.sources.urls import mask_url

log = logging.getLogger(__name__)

# Schemes FFmpeg reads through a demuxer rather than a protocol (not in avio's protocol list).
DEMUXER_SCHEMES = ("rtsp", "rtsps")
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "rtmpts", "udp", "rtp", "tcp", "srt", "udplite")
WEB_SCHEMES = ("http", "https")
PROBE_TIMEOUT_S = 10.0
PLAYLIST_MAX_BYTES = 1 << 20
HTTP_STATUS = {401: "unauthorized", 403: "forbidden", 404: "not found", 410: "gone"}
SRT_HINT = (
    "this build's FFmpeg (the one inside the PyAV wheel) has no SRT; install PyAV built on a system FFmpeg "
    "that has it (pip install av --no-binary av, with libsrt), or relay the stream to UDP or RTMP"
)


class UrlKind(StrEnum):
    FILE = "file"  # finite: a recording
    LIVE = "live"


def scheme_of(spec: str) -> str | None:
    return spec.split("://", 1)[0].lower() if "://" in spec else None


@functools.lru_cache(maxsize=1)
def ffmpeg_protocols() -> frozenset[str] | None:
    """The input protocols of the FFmpeg PyAV runs on (avio_enum_protocols); None if its library
    cannot be found (then every scheme is tried)."""
    lib = _libavformat()
    if lib is None:
        return None
    try:
        avformat = ctypes.CDLL(lib)
        enum = avformat.avio_enum_protocols
    except (OSError, AttributeError):
        return None
    enum.restype = ctypes.c_char_p
    enum.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
    opaque, names = ctypes.c_void_p(None), set()
    while (name := enum(ctypes.byref(opaque), 0)) is not None:
        names.add(name.decode())
    return frozenset(names)


def _libavformat() -> str | None:
    import av

    bundled = glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "libavformat*"))
    if bundled:
        return bundled[0]
    try:  # PyAV built on a system FFmpeg: the library already loaded into this process
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                if "libavformat" in line:
                    return line.split()[-1]
    except OSError:
        pass
    return None


def check_scheme(spec: str) -> str:
    """The URL's scheme, if this build can read it; BadInputError naming it if not."""
    scheme = scheme_of(spec) or ""
    if scheme not in (*LIVE_SCHEMES, *WEB_SCHEMES):
        raise BadInputError(
            f"{mask_url(spec)}: unknown URL scheme {scheme!r} (a file path, a webcam index, or "
            f"{', '.join(s + '://' for s in (*WEB_SCHEMES, *LIVE_SCHEMES[:6]))} ...)"
        )
    protocols = ffmpeg_protocols()
    if scheme not in DEMUXER_SCHEMES and protocols is not None and scheme not in protocols:
        hint = f": {SRT_HINT}" if scheme == "srt" else ""
        raise BadInputError(f"{mask_url(spec)}: this FFmpeg build cannot read {scheme}:// URLs{hint}")
    return scheme


def web_kind(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> UrlKind:
    """Whether an http(s) URL is a recording or a live stream (see the module); BadInputError for
    an answer that says it can never be read (401, 403, 404 ...)."""
    try:
        with _get(url, timeout_s, {"Range": "bytes=0-"}) as response:
            kind = (response.headers.get("Content-Type") or "").lower()
            if "mpegurl" in kind or urlsplit(url).path.lower().endswith(".m3u8"):
                return _playlist_kind(url, response.read(PLAYLIST_MAX_BYTES).decode("utf-8", "replace"), timeout_s)
            if kind.startswith("multipart/"):
                return UrlKind.LIVE  # MJPEG: one picture after another, forever
            # A length says the file ends (byte ranges would let FFmpeg seek it, but even without them
            # it is read to its end); a live HTTP stream has none.
            sized = response.headers.get("Content-Length") or response.headers.get("Content-Range")
            return UrlKind.FILE if sized else UrlKind.LIVE
    except urllib.error.HTTPError as exc:
        if exc.code in HTTP_STATUS or 400 <= exc.code < 500:
            what = HTTP_STATUS.get(exc.code, exc.reason)
            raise BadInputError(f"{mask_url(url)}: HTTP {exc.code} {what}") from None
        log.info("%s: HTTP %d; taken for a live stream that may come back", mask_url(url), exc.code)
        return UrlKind.LIVE
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.info("%s: not reachable now (%s); taken for a live stream", mask_url(url), exc)
        return UrlKind.LIVE


def _playlist_kind(url: str, text: str, timeout_s: float) -> UrlKind:
    """An HLS playlist that ends is a recording; a master playlist is what its first variant is."""
    if "#EXT-X-ENDLIST" in text:
        return UrlKind.FILE
    if "#EXT-X-STREAM-INF" in text:
        lines = [line.strip() for line in text.splitlines()]
        variant = next((line for line in lines if line and not line.startswith("#")), None)
        if variant is not None:
            try:
                with _get(urljoin(url, variant), timeout_s, {}) as response:
                    body = response.read(PLAYLIST_MAX_BYTES).decode("utf-8", "replace")
            except (urllib.error.URLError, OSError, ValueError):
                return UrlKind.LIVE
            return UrlKind.FILE if "#EXT-X-ENDLIST" in body else UrlKind.LIVE
    return UrlKind.LIVE


def _get(url: str, timeout_s: float, headers: dict[str, str]):
    """urlopen with the URL's credentials as Basic authentication (urllib ignores them in URLs)."""
    parts = urlsplit(url)
    headers = {"User-Agent": "screentime", **headers}
    if parts.username is not None:
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        host = parts.hostname or ""
        url = urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
