"""Where results go. Every sink has the same small interface and is a context manager.

`start(info, card)` once, `update(prediction, frame, stats)` per analysed frame, `frame(frame,
prediction)` for every frame in order when an overlay video is written (a live source with
a live view also gets a few frames a second between samples), `control(item)` when a live
stream is lost (`Lost`) or back (`Gap`), in order with the samples and on their clock,
`checkpoint(report)` every few seconds of a run (the report so far, `ended == "running"`),
`tick(stats)` about once a second whether or not samples come (a camera that is down),
`close(report)` once.
A sink that cannot write raises (OutputError); the pipeline cuts it off and the others go on.
"""

from __future__ import annotations

from typing import Protocol

from stream.modelcard import ModelCard
from stream.records import Frame, Gap, Lost, Prediction, VideoInfo
from stream.report import Report


class Sink(Protocol):
    def start(self, info: VideoInfo, card: ModelCard) -> None: ...

    def update(self, prediction: Prediction, frame: Frame, stats) -> None: ...

    def frame(self, frame: Frame, prediction: Prediction | None) -> None: ...

    def control(self, item: Lost | Gap) -> None: ...

    def checkpoint(self, report: Report) -> None: ...

    def tick(self, stats) -> None: ...

    def close(self, report: Report | None) -> None: ...


class BaseSink:
    """No-op defaults so each sink implements only what it uses."""

    def start(self, info: VideoInfo, card: ModelCard) -> None:
        pass

    def update(self, prediction: Prediction, frame: Frame, stats) -> None:
        pass

    def frame(self, frame: Frame, prediction: Prediction | None) -> None:
        pass

    def control(self, item: Lost | Gap) -> None:
        pass

    def checkpoint(self, report: Report) -> None:
        pass

    def tick(self, stats) -> None:
        pass

    def close(self, report: Report | None) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close(None)
