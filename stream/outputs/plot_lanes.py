"""Which lane and colour each class of a report gets, for the plot and its HTML page alike.

Its own module so the page (`stream.outputs.plot_page`) and the picture (`stream.outputs.plot`) share it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BACKGROUND_COLOUR = "#9e9e9e"
# Distinct, readable on white and apart from the grey of the background and the outage shade.
CHARACTER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")

Section = Mapping[str, Any]  # one source's report, as JSON


def lanes(section: Section) -> list[str]:
    """Characters first, in the model's order, then the background (and any class not listed)."""
    classes = list(section["classes"])
    characters = [c for c in section.get("characters") or classes if c in classes]
    return characters + [c for c in classes if c not in characters]


def class_colours(section: Section) -> dict[str, str]:
    """A colour per class: the background grey, the characters from a fixed palette in order."""
    characters = [c for c in lanes(section) if c != section.get("background")]
    colours = {c: CHARACTER_COLOURS[i % len(CHARACTER_COLOURS)] for i, c in enumerate(characters)}
    if section.get("background") is not None:
        colours[section["background"]] = BACKGROUND_COLOUR
    return colours
