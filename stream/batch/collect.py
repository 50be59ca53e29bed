"""The driver's side of the stream: rows come back from the actor pool in any order, a video is
complete once its record and every picture it had inferred are in.

Holds probabilities only (a few floats per sample), never pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stream.batch.decode import NO_PICTURE, VideoRecord


@dataclass
class Gathered:
    """One video's results as they arrive."""

    probs: dict[int, np.ndarray] = field(default_factory=dict)  # seq -> probabilities
    record: VideoRecord | None = None
    inferred_on: set[str] = field(default_factory=set)
    device: str = ""
    seen_s: float = 0.0  # the latest sample time back, for progress

    @property
    def complete(self) -> bool:
        return self.record is not None and len(self.probs) >= self.record.inferred


class Collector:
    def __init__(self) -> None:
        self._videos: dict[int, Gathered] = {}

    def add(self, batch: dict[str, np.ndarray]) -> tuple[list[tuple[int, Gathered]], float]:
        """Take one batch of results; the videos it completed, and the sampled seconds it advanced."""
        touched: set[int] = set()
        advanced = 0.0
        for video, seq, t_s, probs, record, node, device in zip(
            batch["video"],
            batch["seq"],
            batch["t_s"],
            batch["probs"],
            batch["record"],
            batch["node"],
            batch["device"],
            strict=True,
        ):
            index = int(video)
            gathered = self._videos.setdefault(index, Gathered())
            if seq == NO_PICTURE:
                gathered.record = VideoRecord.from_json(str(record))
            else:
                gathered.probs[int(seq)] = np.asarray(probs)
                gathered.inferred_on.add(str(node))
                gathered.device = str(device)
            if float(t_s) > gathered.seen_s:
                advanced += float(t_s) - gathered.seen_s
                gathered.seen_s = float(t_s)
            touched.add(index)
        done = [(i, self._videos.pop(i)) for i in sorted(touched) if self._videos[i].complete]
        return done, advanced
