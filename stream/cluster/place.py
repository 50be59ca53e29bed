"""Ray, for the front door: join the cluster, ship models, place camera workers, take their records.

The only module of `serve` that imports Ray, and only when a cluster address is given. Each
camera's worker (`stream.cluster.worker`) is an actor placed by Ray's scheduler (spread over the
nodes, with the camera's `resources:`); it is owned by the front door, so it ends when the front
door's process does (a front door killed and restarted places its cameras again). A worker
that Ray reports dead, or that does not answer a take in time, is lost: the front door places
the camera again under a new lease (`stream.cluster.remote`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from stream.cluster.records import Batch, CameraSpec, Lease, ModelFiles, Resources, Where
from stream.cluster.worker import CameraWorker
from stream.errors import BadInputError

log = logging.getLogger(__name__)

NAMESPACE = "screentime"
TAKE_GRACE_S = 15.0  # beyond a take's own wait: a worker silent this long is lost (a hung or cut-off node)
START_GRACE_S = 60.0  # the first take of a worker: Ray may wait for room, and the model loads
CALL_S = 15.0  # other calls (stop, where, swap)
POLL_S = 1.0  # a waiting take looks at the stop this often
CONNECT_TIMEOUT_S = 5.0


class WorkerLost(Exception):
    """The worker is gone (its node died, it crashed, or it stopped answering)."""


@dataclass
class Placed:
    handle: Any
    lease: Lease


class Cluster:
    """The front door's side of Ray (one per `serve` process)."""

    def __init__(self, address: str) -> None:
        try:
            import ray
        except ImportError:
            raise BadInputError(
                f"--address {address}: running cameras on a Ray cluster needs Ray: pip install -e '.[cluster]'"
            ) from None

        self.ray = ray
        self.address = address
        self.door = uuid.uuid4().hex[:12]  # this front door's id: every lease names it
        self._models: dict[str, Any] = {}  # sha256 -> the model's bytes in Ray's object store
        self._actor = ray.remote(CameraWorker)

    def connect(self) -> None:
        """Join the cluster (a HOST:PORT that refuses is one line at once, not minutes of Ray's retries)."""
        ray = self.ray
        if ray.is_initialized():
            return
        host, _, port = self.address.rpartition(":")
        if host and port.isdigit():
            try:
                socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
            except OSError as exc:
                raise BadInputError(
                    f"cluster address {self.address}: no Ray cluster answers there ({exc.strerror or exc})"
                ) from None
        ray.init(
            address=self.address,
            namespace=NAMESPACE,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        log.info("joined the Ray cluster at %s: %d nodes", self.address, len(nodes))

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()

    def _ref(self, data: bytes, sha: str) -> Any:
        """Bytes in the object store once per content (every node fetches them from there)."""
        if sha not in self._models:
            self._models[sha] = self.ray.put(data)
        return self._models[sha]

    def model_refs(self, files: ModelFiles) -> tuple[Any, Any, str, str | None]:
        sha, twin_sha = files.sha256s
        twin = self._ref(files.twin, twin_sha) if files.twin is not None and twin_sha else None
        return self._ref(files.model, sha), twin, sha, twin_sha

    def place(
        self, spec: CameraSpec, model: ModelFiles, epoch: int, resources: Resources, avoid: str | None = None
    ) -> Placed:
        """Start the camera's worker wherever Ray finds room (it may wait for a node to have some);
        `avoid`: a node just lost, which Ray may still list as alive for a few seconds."""
        ref, twin, sha, twin_sha = self.model_refs(model)
        spec = replace(spec, model_sha256=sha, twin_sha256=twin_sha)
        lease = Lease(self.door, spec.name, epoch)
        selector = {"ray.io/node-id": f"!{avoid}"} if avoid else None
        handle = self._actor.options(
            label_selector=selector,
            name=f"{spec.name}@{self.door}.{epoch}.{uuid.uuid4().hex[:6]}",  # a restarted camera's epochs begin again
            num_cpus=resources.cpus,
            num_gpus=resources.gpus,
            resources=dict(resources.custom) or None,
            max_restarts=0,  # a worker lost is placed again by the front door, under a new lease and clock
            max_concurrency=4,  # a take waits while a stop or swap comes in
            scheduling_strategy="SPREAD",
        ).remote(spec, ref, twin, lease)
        return Placed(handle, lease)

    def take(
        self,
        placed: Placed,
        after: int,
        wait_s: float,
        pictures: bool,
        starting: bool = False,
        stop: Callable[[], bool] = lambda: False,
    ) -> Batch:
        """The worker's records after `after`; `starting`: its first take (more patient); `stop`:
        give up waiting when it says so (WorkerLost)."""
        limit = wait_s + (START_GRACE_S if starting else TAKE_GRACE_S)
        ref = placed.handle.take.remote(placed.lease, after, wait_s, pictures)
        deadline = time.monotonic() + limit
        try:
            while not self.ray.wait([ref], timeout=min(POLL_S, max(0.0, deadline - time.monotonic())))[0]:
                if time.monotonic() >= deadline:
                    raise WorkerLost(f"no answer in {limit:g} s")
                if stop():
                    raise WorkerLost("stopped while waiting for it")
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            raise WorkerLost(_why(exc)) from None

    def where(self, placed: Placed) -> Where | None:
        """Where the worker runs, once it has started (None if it never does)."""
        try:
            return self.ray.get(placed.handle.where.remote(), timeout=START_GRACE_S)
        except self.ray.exceptions.RayError:
            return None

    def swap(self, placed: Placed, model: ModelFiles) -> None:
        ref, twin, sha, twin_sha = self.model_refs(model)
        self.ray.get(placed.handle.swap.remote(ref, twin, sha, twin_sha), timeout=CALL_S)

    def stop(self, placed: Placed) -> None:
        with contextlib.suppress(self.ray.exceptions.RayError):
            placed.handle.stop.remote()

    def kill(self, placed: Placed) -> None:
        try:
            self.ray.kill(placed.handle, no_restart=True)
        except Exception:  # already gone
            log.debug("kill %s", placed.lease, exc_info=True)


def _why(exc: Exception) -> str:
    """Ray's error as one line (its messages run to pages)."""
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ", "ray::")):
            return f"{type(exc).__name__}: {line[:200]}"
    return type(exc).__name__
