"""`screentime serve` behind the CLI: check the config, or run the service over it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import ValidationError

from stream.errors import BadInputError
from stream.fleet.config import ClusterFile, FleetConfig, first_problem, load_config
from stream.logs import MaskSecrets

log = logging.getLogger(__name__)


def summary(config: FleetConfig) -> str:
    """One line a person can check a config by (no secret in it: URLs as written)."""
    cameras = ", ".join(f"{c.name} every {c.every_s:g} s" for c in config.cameras.values()) or "none yet"
    access = "loopback" if config.loopback else "token required"
    return (
        f"{config.path}: {len(config.cameras)} cameras ({cameras}); http://{config.host}:{config.port} ({access}); "
        f"days cut at midnight {config.timezone.key}"
    )


def cluster_address(flag: str | None, config: FleetConfig) -> str | None:
    """Where the cameras run: `--address`, else the config's `cluster.address`, else $RAY_ADDRESS;
    None: in this process (Ray is then never imported)."""
    found = flag or config.cluster or os.environ.get("RAY_ADDRESS") or None
    if found is not None and found != config.cluster:  # the file's was checked with the file
        try:
            ClusterFile(address=found)
        except ValidationError as exc:
            where = "--address" if flag else "RAY_ADDRESS"
            raise BadInputError(f"{where} {found}: {first_problem(exc).split(': ', 1)[-1]}") from None
    return found


def serve(path: Path, mask: MaskSecrets, check: bool = False, address: str | None = None) -> int:
    """`mask`: the process's one masking filter (the CLI's); it learns every secret the config uses."""
    config = load_config(path)
    mask.add(config.secrets())  # before any line about a camera, the CLI's last error line included
    where = cluster_address(address, config)
    if check:
        print(f"ok: {summary(config)}" + (f"; cameras on the Ray cluster at {where}" if where else ""))
        return 0
    import threading

    from stream.fleet.http import build_app
    from stream.fleet.service import Service, run_service
    from stream.outputs.serving import HttpServer
    from stream.signals import handling_signals

    cluster = None
    if where is not None:
        from stream.cluster.place import Cluster

        cluster = Cluster(where)
        cluster.connect()
    service = Service(config, mask, cluster)
    server = HttpServer(build_app(service), config.host, config.port, "http")  # a taken port fails here
    stop = threading.Event()

    def on_stop() -> None:
        log.info("stopping: every camera's day file is written first")
        stop.set()
        service.run.stop()

    try:
        with handling_signals(on_stop, reload=service.reload_requested.set):
            return run_service(service, server, stop)
    finally:
        if cluster is not None:
            cluster.close()
