"""A synthetic two-character cartoon whose truth is known: for the demo and for tests.

Scenes of a few seconds each show nobody, "jerry" (a small brown mouse) or "tom" (a large
blue-grey cat) moving over a changing room. Frame times are exact, so screen time is known.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

CLASSES = ("neither", "jerry", "tom")


@dataclass(frozen=True)
class Scene:
    label: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Clip:
    path: Path
    scenes: list[Scene]
    times_s: list[float]
    size: tuple[int, int]

    def label_at(self, t_s: float) -> int:
        for scene in self.scenes:
            if scene.start_s <= t_s < scene.end_s:
                return scene.label
        return self.scenes[-1].label

    @property
    def duration_s(self) -> float:
        return self.scenes[-1].end_s

    def screen_time_s(self, classes: Sequence[str] = CLASSES) -> dict[str, float]:
        totals = {c: 0.0 for c in classes}
        for scene in self.scenes:
            totals[classes[scene.label]] += scene.end_s - scene.start_s
        return totals


def plan_scenes(duration_s: float, seed: int, min_s: float = 2.0, max_s: float = 5.0) -> list[Scene]:
    """Scenes of random length cycling through the classes so each appears about equally."""
    rng = random.Random(seed)
    scenes: list[Scene] = []
    t, last = 0.0, -1
    while t < duration_s:
        label = rng.choice([c for c in range(len(CLASSES)) if c != last])
        end = min(duration_s, t + round(rng.uniform(min_s, max_s), 1))
        scenes.append(Scene(label, t, end))
        t, last = end, label
    return scenes


def draw_frame(label: int, t_s: float, size: tuple[int, int], scene_seed: int) -> np.ndarray:
    """One BGR frame: a room whose colours change by scene, and the character of `label`."""
    width, height = size
    rng = np.random.default_rng(scene_seed)
    wall = rng.integers(150, 240, 3)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = wall
    floor_y = int(height * 0.75)
    image[floor_y:] = rng.integers(60, 140, 3)
    for _ in range(3):  # furniture
        x0, w = int(rng.integers(0, width - 20)), int(rng.integers(10, width // 4))
        h = int(rng.integers(10, height // 3))
        cv2.rectangle(image, (x0, floor_y - h), (x0 + w, floor_y), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    phase = (t_s * 0.3) % 1.0
    if label == 1:  # jerry: small brown mouse with round ears
        r = max(4, height // 10)
        cx, cy = int(width * (0.15 + 0.7 * phase)), floor_y - r
        cv2.ellipse(image, (cx, cy), (int(r * 1.3), r), 0, 0, 360, (40, 90, 160), -1)
        cv2.circle(image, (cx + r, cy - r), max(2, r // 2), (60, 120, 200), -1)
        cv2.circle(image, (cx + r // 2, cy - r), max(2, r // 2), (60, 120, 200), -1)
    elif label == 2:  # tom: large blue-grey cat with pointed ears
        r = max(8, height // 4)
        cx, cy = int(width * (0.85 - 0.7 * phase)), floor_y - r
        cv2.ellipse(image, (cx, cy), (int(r * 0.8), r), 0, 0, 360, (150, 110, 90), -1)
        head = (cx, cy - r)
        cv2.circle(image, head, r // 2, (170, 130, 110), -1)
        ears = np.array(
            [[head[0] - r // 2, head[1] - r // 4], [head[0] - r // 4, head[1] - r], [head[0], head[1] - r // 3]]
        )
        cv2.fillPoly(image, [ears, ears + np.array([r // 2, 0])], (150, 110, 90))
        cv2.circle(image, (head[0] - r // 6, head[1] - r // 10), max(2, r // 10), (255, 255, 255), -1)
    return image


def write_video(
    path: Path,
    times_s: Sequence[float],
    frame_at,
    size: tuple[int, int],
    codec: str = "libx264",
    rate: float = 10,
    gop: int | None = None,
    options: dict[str, str] | None = None,
    rotation: int = 0,
) -> None:
    """Encode frames at exact timestamps (variable frame rate allowed) with PyAV; `gop`: a keyframe
    every `gop` frames (else the encoder's choice); `options`: the encoder's own (say x264-params);
    `rotation`: degrees counter-clockwise a player turns the pictures by (the container's display
    matrix, as phones write it), so the frames given are the stored, unturned ones."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(rate).limit_denominator(1000), options=options or {})
        assert isinstance(stream, av.VideoStream)  # a video codec's stream
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        last_pts = -1
        for t in times_s:
            frame = av.VideoFrame.from_ndarray(frame_at(t), format="bgr24")
            frame.pts = max(last_pts + 1, round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            last_pts = frame.pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def make_clip(
    path: str | Path,
    duration_s: float = 30.0,
    fps: float = 10.0,
    size: tuple[int, int] = (192, 108),
    seed: int = 0,
    times_s: Sequence[float] | None = None,
    gop: int | None = None,
) -> Clip:
    """Write the cartoon to `path` (MP4, H.264) and return its truth."""
    path = Path(path)
    scenes = plan_scenes(duration_s, seed)
    times = list(times_s) if times_s is not None else [i / fps for i in range(round(duration_s * fps))]
    clip = Clip(path, scenes, times, size)

    def frame_at(t: float) -> np.ndarray:
        index = next(i for i, s in enumerate(scenes) if s.start_s <= t < s.end_s or s is scenes[-1])
        return draw_frame(scenes[index].label, t, size, scene_seed=seed * 1000 + index)

    write_video(path, times, frame_at, size, rate=fps, gop=gop)
    return clip
