"""Shared fixtures. Everything is built by the tests themselves; nothing comes from ../shared."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent))  # lets tests/live import `helpers` directly

from tests.helpers import make_color_model


@pytest.fixture(scope="session")
def color_model(tmp_path_factory) -> Path:
    return make_color_model(tmp_path_factory.mktemp("model") / "color.onnx")
