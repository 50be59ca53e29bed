"""Stream URLs as users may see them: credentials masked in names, logs and errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def mask_url(spec: str) -> str:
    """Hide credentials (`rtsp://user:pass@host` -> `rtsp://user:***@host`, `?token=***`) for logs
    and reports."""
    if "://" not in spec:
        return spec
    spec = SECRET_PARAMETER.sub(r"\1***", spec)
    parts = urlsplit(spec)
    if parts.password is None and parts.username is None:
        return spec
    host = parts.hostname or ""
    port: int | str | None
    try:
        port = parts.port
    except ValueError:  # a port out of range: shown as written
        port = parts.netloc.rpartition(":")[2]
    if port:
        host = f"{host}:{port}"
    user = f"{parts.username}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


# Query parameters whose value is a secret by their name (`?token=...`, `&api_key=...`).
SECRET_PARAMETER = re.compile(
    r"(?i)([?&;][\w.-]*(?:password|passwd|pass|pwd|pw|token|key|secret|auth|signature|sig|credential)[\w.-]*=)[^&;#\s\"']+"
)


def mask_text(text: str) -> str:
    """Mask every URL credential inside a message (FFmpeg and OpenCV echo URLs back): a URL's
    password, and the value of every query parameter named like a secret."""
    text = re.sub(r"(\w+://[^:/@\s]+):[^@\s/]+@", r"\1:***@", text)
    return SECRET_PARAMETER.sub(r"\1***", text)
