"""Real Ray nodes on loopback, each a `ray start --block` process group of its own, as the README
starts them: a head, nodes joining it, and a node killed outright (its whole process group)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTS = ("node-manager", "object-manager", "runtime-env-agent", "metrics-export", "dashboard-agent-grpc")
PORTS += ("dashboard-agent-listen",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """One node, in the foreground (`--block`): SIGTERM to it stops exactly its own processes
    (never `ray stop`, which stops every Ray on the machine). Every port is a free one."""
    command = [str(Path(sys.executable).parent / "ray"), "start", "--block", "--disable-usage-stats"]
    command += ["--node-ip-address=127.0.0.1", "--num-gpus=0", *args]
    command += [f"--{name}-port={free_port()}" for name in PORTS]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(log: Path, text: str, process: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


class RayNodes:
    """A head and worker nodes with a token of their own; the nodes' workers get this checkout on
    PYTHONPATH, as a real cluster needs screentime installed. `env` is what a driver joins with."""

    def __init__(self, folder: Path, head_cpus: int = 1, fast_failure: bool = False) -> None:
        self.folder = folder
        self.port = free_port()
        self.temp = Path(f"/tmp/st{secrets.token_hex(3)}")  # Ray's socket paths must stay short
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # a test cluster has nothing to drain: stop at once
        }
        if fast_failure:  # a dead node noticed in a few seconds rather than Ray's default half a minute
            self.env |= {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
            self.env |= {"RAY_health_check_timeout_ms": "1000", "RAY_health_check_initial_delay_ms": "1000"}
        self.nodes: list[tuple[str, subprocess.Popen]] = []
        head = ray_start(
            self.env,
            folder / "head.log",
            "--head",
            f"--port={self.port}",
            f"--num-cpus={head_cpus}",
            "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={self.temp}",
        )
        self.nodes.append(("head", head))
        wait_for(folder / "head.log", "Ray runtime started", head)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, cpus: int = 1) -> subprocess.Popen:
        """A node with a custom resource of its name, so a driver can tell the nodes apart (`names`).
        A node whose start Ray itself gives up on ("timed out during startup", seen once on a busy
        machine) is started once more, on fresh ports."""
        extra = [f'--resources={{"{name}": 1}}']
        log = self.folder / f"{name}.log"
        for attempt in range(2):
            node = ray_start(self.env, log, f"--address={self.address}", f"--num-cpus={cpus}", *extra)
            try:
                wait_for(log, "Ray runtime started", node)
            except AssertionError:
                if node.poll() is None or attempt:
                    raise
                continue
            self.nodes.append((name, node))
            return node
        raise AssertionError(f"node {name} did not start")

    def names(self) -> dict[str, str]:
        """Ray's id of every alive node -> the name it was added under ("head" for the head)."""
        script = (
            f"import json, ray; ray.init(address='{self.address}', log_to_driver=False); "
            f"print(json.dumps({{n['NodeID']: next((k for k in n['Resources'] if k in {[name for name, _ in self.nodes]!r}), 'head') "
            "for n in ray.nodes() if n['Alive']}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], env=self.env, capture_output=True, text=True, timeout=120, check=True
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    def kill(self, name: str) -> float:
        """The node's every process killed at once, as a machine that loses power: its session
        (raylet, agents) and their children, which Ray starts in sessions of their own (workers).
        Returns when they were killed (time.monotonic())."""
        killed = time.monotonic()
        for found, process in self.nodes:
            if found == name and process.poll() is None:
                for pid in _tree(process.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
                process.wait(30)
        return killed

    def stop(self) -> None:
        for _, node in reversed(self.nodes):  # one after the other, the head last
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
                try:
                    node.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(node.pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(self.temp)], check=False)


def _tree(session: int) -> set[int]:
    """Every process of a session, and every descendant of those (wherever they moved to)."""
    parents: dict[int, int] = {}
    sessions: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(entry.name)], sessions[int(entry.name)] = int(fields[1]), int(fields[3])
    found = {pid for pid, sid in sessions.items() if sid == session}
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found
