"""Native libraries' own console output (OpenCV, FFmpeg inside it and inside PyAV), turned down for users."""

from __future__ import annotations

import logging
import os

from stream.urls import mask_text


class MaskCredentials(logging.Filter):
    """Mask URL passwords in every line a handler writes: FFmpeg's own messages may quote a URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
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
