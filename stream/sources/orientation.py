"""Which way up a file's pictures are shown: its display matrix, applied as players apply it.

Phones store pictures as the sensor read them and record how to turn them for display in the
container (a display matrix; older muxers wrote a `rotate` tag). Players turn them; a decoder
does not. Analysing the stored picture would show the model a sideways world, so a file's
pictures are turned here, once per frame, with a transpose and a flip (cheap, exact, no resampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import av
import cv2
import numpy as np
from av.sidedata.sidedata import Type as SideDataType


@dataclass(frozen=True)
class Orientation:
    """Turn a stored picture upright: transpose first (a quarter turn), then mirror."""

    transpose: bool = False
    hflip: bool = False
    vflip: bool = False

    @classmethod
    def from_matrix(cls, a: float, b: float, c: float, d: float) -> Orientation:
        """From the 2x2 part of FFmpeg's display matrix, which maps a stored point (x, y), y down,
        to the shown (a x + c y, b x + d y). Angles between quarter turns go to the nearest one."""
        if abs(a) + abs(d) >= abs(b) + abs(c):  # x stays x: at most mirrored
            return cls(False, a < 0, d < 0)
        return cls(True, c < 0, b < 0)  # x comes from y: a transpose, then mirrors

    @classmethod
    def from_rotation(cls, degrees_ccw: float) -> Orientation:
        """A pure rotation, counter-clockwise as FFmpeg's `av_display_rotation_get` (and PyAV's
        `VideoFrame.rotation`) reports it."""
        theta = math.radians(degrees_ccw)
        return cls.from_matrix(math.cos(theta), -math.sin(theta), math.sin(theta), math.cos(theta))

    @property
    def upright(self) -> bool:
        return not (self.transpose or self.hflip or self.vflip)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The shown (width, height) of a stored picture of this size."""
        return (height, width) if self.transpose else (width, height)

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.transpose:
            image = cv2.transpose(image)
        if self.hflip or self.vflip:
            image = cv2.flip(image, -1 if self.hflip and self.vflip else 1 if self.hflip else 0)
        return image


UPRIGHT = Orientation()


def orientation_of(frame: av.VideoFrame, tags: dict[str, str]) -> Orientation:
    """The display matrix FFmpeg attaches to decoded frames (flips included), else a stream's
    `rotate` tag (clockwise degrees, as older FFmpeg wrote and read it), else upright."""
    # PyAV's stubs declare side_data as one SideData; it is a mapping that takes a side-data Type as key.
    matrix = frame.side_data.get(SideDataType.DISPLAYMATRIX)  # type: ignore[call-overload]
    if matrix is not None:
        m = np.frombuffer(bytes(matrix), dtype=np.int32)
        return Orientation.from_matrix(*(float(v) for v in m[[0, 1, 3, 4]]))
    rotate = next((v for k, v in tags.items() if k.lower() == "rotate"), None)
    try:
        return Orientation.from_rotation(-float(rotate)) if rotate else UPRIGHT
    except ValueError:
        return UPRIGHT
