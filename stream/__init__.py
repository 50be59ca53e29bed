"""screentime's stream side: measure per-character screen time on files, webcams and streams.

Light by design: OpenCV, onnxruntime, numpy, rich and PyAV; never TensorFlow.
"""

from stream.api import Watch, WatchConfig, watch
from stream.counting.report import Report
from stream.errors import ScreentimeError
from stream.model.card import ModelCard
from stream.records import Frame, Prediction, Segment, VideoInfo
from stream.version import __version__

__all__ = [
    "Frame",
    "ModelCard",
    "Prediction",
    "Report",
    "ScreentimeError",
    "Segment",
    "VideoInfo",
    "Watch",
    "WatchConfig",
    "__version__",
    "watch",
]
