"""Stream URLs as users may see them: credentials masked in names, logs and errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def mask_url(spec: str) -> str:
    """Hide credentials (`rtsp://user:pass@host` -> `rtsp://user:***@host`) for logs and reports."""
    if "://" not in spec:
        return spec
    parts = urlsplit(spec)
    if parts.password is None and parts.username is None:
        return spec
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def mask_text(text: str) -> str:
    """Mask every URL credential inside a message (FFmpeg and OpenCV echo URLs back)."""
    return re.sub(r"(\w+://[^:/@\s]+):[^@\s/]+@", r"\1:***@", text)
