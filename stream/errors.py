"""The error tree. The library raises these; only the CLI turns them into one line and an exit code."""

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
