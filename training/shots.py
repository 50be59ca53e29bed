"""The shot signature lives in `stream.frames.shots` (a camera service collects frames by it without
TensorFlow); this name keeps training's imports working."""

from stream.frames.shots import SAME_SHOT, same_shot, same_shot_as, signature

__all__ = ["SAME_SHOT", "same_shot", "same_shot_as", "signature"]
