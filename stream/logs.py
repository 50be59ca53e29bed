"""What the process prints: one masking of secrets for every line, and native libraries'
console output (OpenCV, FFmpeg inside it and inside PyAV) turned down for users."""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Iterable

from stream.sources.urls import mask_text


class MaskSecrets(logging.Filter):
    """The one masking of the process: every log line (ours, uvicorn's, FFmpeg's echoes), tracebacks
    and the CLI's last error line. It hides URL passwords, query parameters named like secrets
    (`password`, `token`, `key` ...) and every secret value it has been given (a config's
    expanded `${VAR}`s: they may sit anywhere in a URL). Values are only ever added: a line
    about a camera that just left still hides its password."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def mask(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)  # a secret inside another: the longer first
        for secret in secrets:
            text = text.replace(secret, "***")
        return mask_text(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:  # a traceback may quote a URL too
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info, record.exc_text = None, None
        masked = self.mask(message)
        record.msg, record.args = masked, None
        return True


def quiet_native_logs(verbose: bool = False) -> None:
    """OpenCV's and FFmpeg's messages repeat in C++ terms what screentime reports in one line."""
    import av
    import cv2

    if not verbose:  # FFmpeg inside OpenCV reads this when a capture opens; -8 is AV_LOG_QUIET
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    else:  # PyAV keeps its FFmpeg silent unless asked; asked, the lines go through logging ("libav.*")
        av.logging.set_level(av.logging.WARNING)
    levels = cv2.utils.logging
    levels.setLogLevel(levels.LOG_LEVEL_WARNING if verbose else levels.LOG_LEVEL_SILENT)
