"""Shared by the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A feature cache of the module's own (SCREENTIME_CACHE), so a test sees only its own hits."""
    path = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("SCREENTIME_CACHE", str(path))
    yield path
    mp.undo()
