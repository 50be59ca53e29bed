"""Times for people: the one formatter of seconds as a clock (plot, page, dashboard, mistakes)."""

from __future__ import annotations


def clock(seconds: float, minutes: bool | None = None, padded: bool = False) -> str:
    """Seconds under two minutes (or if `minutes` is False), else m:ss or h:mm:ss (rounded).

    `padded`: always hh:mm:ss, whole seconds, so a live display's columns do not jump.
    """
    seconds = max(0.0, seconds)
    if padded:
        whole = int(seconds)
        return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    if not (minutes if minutes is not None else seconds >= 120):
        return f"{seconds:g}"
    whole = round(seconds)
    h, m, s = whole // 3600, whole % 3600 // 60, whole % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def length(seconds: float) -> str:
    """A total as people read it: 42.5 s, 3:05, 1:02:03."""
    return f"{seconds:.1f} s" if seconds < 120 else clock(seconds)
