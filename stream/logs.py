"""Native libraries' own console output (OpenCV, FFmpeg inside it), turned down for users."""

from __future__ import annotations

import os


def quiet_native_logs(verbose: bool = False) -> None:
    """OpenCV's and FFmpeg's messages repeat in C++ terms what screentime reports in one line."""
    import cv2

    if not verbose:  # FFmpeg inside OpenCV reads this when a capture opens; -8 is AV_LOG_QUIET
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    levels = cv2.utils.logging
    levels.setLogLevel(levels.LOG_LEVEL_WARNING if verbose else levels.LOG_LEVEL_SILENT)
