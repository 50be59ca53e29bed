"""Silence C/C++ libraries that print straight to the process's stdout and stderr.

onnxruntime prints many lines while it tries GPU providers that cannot load, and TensorFlow's
C++ core prints a banner on import that no environment variable turns off any more. Users get
one logged line instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Swallow what onnxruntime's C++ and Python print while it tries providers that fail.

    Its fall-back messages are many lines on stdout and stderr; the engine logs one instead.
    """
    captured: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            yield captured
        finally:
            for fd, old in zip((1, 2), saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and touch its devices) with its C++ start-up noise swallowed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with captured_output():
        import tensorflow as tf

        tf.config.list_physical_devices()
