"""The error tree. The library raises these; only the CLI turns them into one line and an exit code.

Exit codes (a supervisor such as systemd or Docker's restart policy acts on them):
0 everything asked for was written; 2 bad input (flags, files, model); 3 a source failed or could
not be reached; 4 an output could not be written; 130 forced stop (a second Ctrl-C).
"""

from __future__ import annotations


class ScreentimeError(Exception):
    """Base of every error a user can cause; its message is shown as one line."""

    exit_code = 2


class BadInputError(ScreentimeError):
    """A file, flag or path given by the user cannot be used."""


class LabelError(BadInputError):
    """A label CSV is empty, malformed or names frames or classes that do not exist."""


class ModelError(ScreentimeError):
    """A model file is missing, not ONNX, or not made by screentime."""


class SourceError(ScreentimeError):
    """A video source cannot be opened or stopped delivering frames."""

    exit_code = 3


class SourceConnectionError(SourceError):
    """A live source could not be reached (after the allowed reconnects)."""


class OutputError(ScreentimeError):
    """An output asked for (report, timeline, overlay video) could not be written: disk full,
    permission denied, path gone. The run's other outputs are still finished."""

    exit_code = 4
