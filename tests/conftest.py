"""Shared fixtures. Everything is built by the tests themselves; nothing comes from ../shared."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import make_color_model


@pytest.fixture(scope="session")
def color_model(tmp_path_factory) -> Path:
    return make_color_model(tmp_path_factory.mktemp("model") / "color.onnx")
