"""The records a cluster's front door and its camera workers exchange (pure data: no Ray here)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from stream.outputs.events import Event
from stream.settings import SourceSettings


@dataclass(frozen=True)
class Resources:
    """What one camera's worker takes of a node: CPUs, a GPU share, and custom resources (a site's
    node declares `--resources '{"site-a": 1}'`; a camera that only that node reaches asks for it)."""

    cpus: float = 1.0
    gpus: float = 0.0
    custom: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelFiles:
    """A camera's model as the front door checked it: the file named in the config and its INT8
    twin if one lies beside it (each node chooses for its own device), read once, so what ships
    is what was checked, whatever the disk holds later."""

    model: bytes
    twin: bytes | None = None

    @classmethod
    def read(cls, path: Path) -> ModelFiles:
        from stream.model.engine import int8_sibling

        twin = int8_sibling(path)
        return cls(path.read_bytes(), twin.read_bytes() if twin.is_file() and twin != path else None)

    @property
    def sha256s(self) -> tuple[str, str | None]:
        return _sha(self.model), _sha(self.twin) if self.twin is not None else None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Lease:
    """Who may take a camera's records: the front door's run and the camera's epoch in it (one
    more each time the camera is placed again). Records under any other lease are refused."""

    door: str  # the front door process's id (a restarted front door has another)
    camera: str
    epoch: int


@dataclass(frozen=True)
class CameraSpec:
    """What a node needs to run one camera: its URL (secrets expanded: it crosses to the node), its
    settings, the model's SHA-256 and device, and where its clock carries on from."""

    name: str
    url: str
    shown_url: str  # for the node's log lines and the records' tags
    settings: SourceSettings
    device: str
    model_sha256: str
    model_name: str
    # Where its clock carries on from: (the camera's time of its last sample, seconds since that
    # sample when placed, the front door's Unix time when placed).
    resume_at: tuple[float, float, float] | None = None
    twin_sha256: str | None = None  # its INT8 twin's, when one travels with it
    threads: int = 0  # the model's threads: the CPUs Ray holds for the worker (0: every core)


@dataclass(frozen=True)
class Batch:
    """Records taken from a worker: each with its number and the model that made it."""

    lease: Lease
    records: tuple[tuple[int, str, Event], ...]  # (seq, model sha256, event)
    sent_mono: float  # the node's monotonic clock when sent: capture times are relative to it
    ended: bool  # the pipeline has finished: nothing follows the last record
    error: str  # the pipeline's error, when it failed


@dataclass(frozen=True)
class Where:
    node_id: str
    host: str
    pid: int
