"""A driver of the cluster test: two workers of one camera, the first one's records taken late.

Usage: python stale_records.py RAY_ADDRESS FOLDER (FOLDER holds m.onnx and v.mp4); prints one JSON
line for tests/live/test_fleet_cluster.py to check.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import ray

from stream.cluster.place import Cluster
from stream.cluster.records import CameraSpec, ModelFiles, Resources
from stream.cluster.remote import RemotePipeline
from stream.model.engine import Engine
from stream.outputs.events import SourceTag
from stream.settings import SourceSettings


def main(address: str, folder: Path) -> None:
    door = Cluster(address)
    door.connect()
    model = ModelFiles.read(folder / "m.onnx")
    spec = CameraSpec("a", str(folder / "v.mp4"), "v.mp4", SourceSettings(every_s=0.5), "cpu", "", "m.onnx")
    seen: list = []
    remote = RemotePipeline(
        door,
        spec,
        lambda: model,
        Engine(folder / "m.onnx", "cpu").card,
        Resources(),
        seen.append,
        tag=SourceTag(0, "a", "v.mp4", False),
        stop=threading.Event(),
    )
    old = door.place(spec, model, 1, Resources())
    late = door.take(old, 0, 30.0, False)  # taken, but the front door moved on before handing them over
    remote.placed, remote.epoch = door.place(spec, model, 2, Resources()), 2
    list(remote.admit(late))
    dispatched_late = len(seen)
    try:
        ray.get(old.handle.take.remote(remote.placed.lease, 0, 0.0))
        stale_take = "accepted"
    except ray.exceptions.RayError as exc:
        stale_take = str(exc)
    fresh = door.take(remote.placed, 0, 30.0, False)
    list(remote.admit(fresh))
    result = {
        "late": len(late.records),
        "refused": remote.refused,
        "dispatched_late": dispatched_late,
        "stale_take": stale_take[-500:],
        "fresh": len(fresh.records),
        "dispatched_fresh": len(seen) - dispatched_late,
    }
    door.kill(old)
    door.kill(remote.placed)
    door.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
