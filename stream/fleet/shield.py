"""Which requests the service's port answers: the rules against web pages that drive it.

A browser lets any page send a "simple" cross-site request (a form POST, `text/plain`) to a
local port, and a DNS-rebinding name lets a page read the answers. So, on every request:

- `Host` must name this service: its bound address, `localhost`, a loopback address, a name
  listed in `http.hosts` (a reverse proxy's), or, when bound to every address, an IP literal
  (rebinding needs a name). Else 421.
- A request that changes something (POST, DELETE ...) must say `Content-Type: application/json`
  (a page cannot send that cross-site without a CORS preflight, which this service never
  grants), else 415; and its `Origin`, when a browser sends one, must be this very service
  (scheme aside: behind a TLS proxy the page is https), and `Sec-Fetch-Site` not cross-site,
  else 403.

Pure functions of the headers, so each rule is tested without a server.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str


def split_host(value: str) -> tuple[str, str] | None:
    """`name[:port]` or `[v6][:port]` -> (lower-case name, port or ""); None when malformed."""
    value = value.strip().lower()
    if not value or any(c.isspace() or c in "/@?#\\" for c in value):
        return None
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
        if ":" in port:
            return None
    if port and not port.isdigit():
        return None
    return name.rstrip("."), port


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_allowed(name: str, bound: str, names: Iterable[str]) -> bool:
    """Whether a Host header's name (no port) names this service bound to `bound`."""
    if name in {"localhost", bound.lower(), *names}:
        return True
    ip = _ip(name)
    if ip is None:
        return False
    return ip.is_loopback or bound in WILDCARDS


def check_request(method: str, headers: Mapping[str, str], bound: str, names: Iterable[str]) -> Refusal | None:
    """None when the request may go on, else why not (see the module)."""
    host = split_host(headers.get("host", ""))
    if host is None or not host_allowed(host[0], bound, names):
        return Refusal(421, "this service does not answer to that Host name (add it to http.hosts)")
    if method.upper() in SAFE_METHODS:
        return None
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        return Refusal(415, "a request that changes something must be Content-Type: application/json")
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return Refusal(403, "cross-site requests are refused")
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin.strip().lower())
        try:
            netloc = split_host(parts.netloc) if parts.scheme in ("http", "https") and parts.hostname else None
        except ValueError:
            netloc = None
        if netloc is None or netloc != host:
            return Refusal(403, "the request's Origin is not this service")
    return None


def json_depth(text: str) -> int:
    """How deeply `[` and `{` nest in a JSON text (outside strings): checked before parsing, since
    Python's parser recurses and a deep enough document is a RecursionError."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def parse_json(data: bytes, max_depth: int) -> object:
    """A request body as JSON: UTF-8, nested at most `max_depth`, finite numbers only. ValueError
    (one line) otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    if json_depth(text) > max_depth:
        raise ValueError(f"the JSON nests deeper than limits.json_depth ({max_depth})")

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not a number this service takes (finite numbers only)")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON ({exc.msg} at {exc.pos})") from None
