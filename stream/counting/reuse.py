"""Near-duplicate reuse: a sample that looks like the last one the model saw reuses its result.

Held drawings and stills are common in animation; running the model again on the same picture
costs time and changes nothing. Whether a sample needs the model depends only on the thumbnails
(`stream.frames.preprocess.thumbnail`) in order, so `watch`'s pipeline and `batch`'s decode workers
decide it with this one object, and a video reuses the same results whichever analysed it.
"""

from __future__ import annotations

import numpy as np

from stream.frames.preprocess import near_duplicate


class Reuse:
    """Tracks the last thumbnail the model saw; counts the samples that reused a result."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold  # mean grey-level difference under which a result is reused (0: never)
        self.saved = 0
        self._reference: np.ndarray | None = None

    def needs_model(self, thumb: np.ndarray | None) -> bool:
        """True: run the model on this sample (it becomes the reference); False: reuse the last result."""
        if near_duplicate(thumb, self._reference, self.threshold):
            self.saved += 1
            return False
        self._reference = thumb
        return True

    def forget(self) -> None:
        """The next sample needs the model (another model now answers: a fleet swapped it)."""
        self._reference = None
