"""`screentime batch`: a whole archive through Ray, on this machine or a cluster, resumable.

    videos -> [decode: Ray tasks, one per video, CPU] -> sampled pictures at the model's size
           -> [inference: Ray Data actor pool of ONNX engines, GPU or CPU, batched] -> probabilities
           -> [driver: accountant] -> DIR/<video>.json (atomic) ... -> DIR/summary.csv (+ .parquet)

Ray Data streams the stages: decoding runs ahead of inference only as far as its object-store
budget allows (then its tasks pause), so memory stays bounded and nothing spills, whatever the
archive's size. A video's report is written the moment its last result is back; a report that
exists for the same model file (SHA-256) and interval is not redone, so a batch stopped by
Ctrl-C, a crash or a lost node picks up where it was. Ray is imported here only, when a batch
runs: `import stream` never loads it.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from stream.batch.collect import Collector, Gathered
from stream.batch.decode import decode_rows
from stream.batch.infer import InferenceWorker
from stream.batch.plan import SUMMARY_NAME, BatchConfig, Video, find_videos, finished_report, plan_videos
from stream.batch.progress import BatchProgress, probe_duration_s
from stream.batch.summary import Outcome, Status, brief, write_summary
from stream.batch.tally import video_report
from stream.errors import BadInputError
from stream.frames.preprocess import SKIP_SIMILAR_DEFAULT
from stream.model.card import ModelCard
from stream.model.engine import Device, Engine, choose_model, file_sha256
from stream.outputs.atomic import atomic_write_text, check_writable
from stream.outputs.report_sink import report_json

log = logging.getLogger(__name__)

CLUSTER_EXTRA = 'Ray is not installed: pip install "screentime[cluster]"'
FAILED_EXIT_BASE = 100
FAILED_EXIT_MAX = 125  # 126 and up mean other things to shells
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BatchResult:
    outcomes: list[Outcome]
    summary: list[Path] = field(default_factory=list)
    interrupted: bool = False

    def with_status(self, status: Status) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is status]

    @property
    def failed(self) -> list[Outcome]:
        return self.with_status(Status.FAILED)


@dataclass(frozen=True)
class _Model:
    """The model file every worker loads, chosen once here (INT8 twin on CPU, as `watch` does)."""

    given: Path
    path: Path
    sha256: str
    card: ModelCard


def run_batch(
    config: BatchConfig, console: Console | None = None, on_video: Callable[[Outcome], None] | None = None
) -> BatchResult:
    """Analyse every video not already done; the summary is rewritten at the end, also after
    Ctrl-C (KeyboardInterrupt is raised again once it is)."""
    config.validate()
    videos = plan_videos(find_videos(config.inputs))
    try:
        config.out.mkdir(parents=True, exist_ok=True)
        check_writable(config.out / f"{SUMMARY_NAME}.csv")
    except OSError as exc:
        raise BadInputError(f"{config.out}: cannot write ({exc})") from None
    model = _load_model(config)
    outcomes: dict[int, Outcome] = {}
    for video in videos:
        done = finished_report(config.out / video.report_name, model.sha256, config.every_s, config.crop)
        if done is not None:
            outcomes[video.index] = Outcome(video, Status.DONE, brief(done))
    pending = [v for v in videos if v.index not in outcomes]
    log.info("%d videos: %d already done, %d to analyse", len(videos), len(outcomes), len(pending))

    def record(outcome: Outcome) -> None:
        outcomes[outcome.video.index] = outcome
        if on_video is not None:
            on_video(outcome)

    interrupted = False
    try:
        if pending:
            _analyse(pending, config, model, record, console)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for video in pending:
            outcomes.setdefault(video.index, Outcome(video, Status.NOT_RUN))
        ordered = [outcomes[v.index] for v in videos]
        written = write_summary(config.out, ordered)
    if interrupted:
        raise KeyboardInterrupt
    return BatchResult(ordered, written)


def exit_status(failed: int) -> int:
    """0 when every video has its report; 100 + the number that failed (125: 25 or more), so a
    script can tell failed videos from bad input (2) and a stop (130)."""
    return 0 if failed == 0 else min(FAILED_EXIT_BASE + failed, FAILED_EXIT_MAX)


def run_cli_batch(config: BatchConfig) -> int:
    """Run, print one line per failed video (stderr) and the totals; the exit status counts failures."""
    result = run_batch(config)
    for outcome in result.failed:
        print(f"screentime: failed: {outcome.error}", file=sys.stderr)
    counts = ", ".join(f"{len(result.with_status(s))} {s}" for s in (Status.ANALYSED, Status.DONE, Status.FAILED))
    print(f"{len(result.outcomes)} videos: {counts} -> {', '.join(str(p) for p in result.summary)}")
    return exit_status(len(result.failed))


def _load_model(config: BatchConfig) -> _Model:
    """Chosen, hashed and read here, so a bad model fails before a cluster is started."""
    device = Device.CUDA if config.gpus_per_worker > 0 else Device.CPU
    path = choose_model(config.model, device).resolve()
    engine = Engine(path, Device.CPU)  # only to read and check the card
    return _Model(config.model, path, file_sha256(path), engine.card)


def _analyse(
    pending: list[Video], config: BatchConfig, model: _Model, record: Callable[[Outcome], None], console: Console | None
) -> None:
    try:
        import ray
        from ray.data import ActorPoolStrategy
    except ImportError:
        raise BadInputError(CLUSTER_EXTRA) from None
    started = _connect(ray, config)
    try:
        workers = min(_workers(ray, config), len(pending))  # an idle engine only costs memory
        threads = config.engine_threads or max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
        dataset = _dataset(ray, ActorPoolStrategy, pending, config, model, workers, threads)
        durations = {v.index: probe_duration_s(v.path) if config.progress else 0.0 for v in pending}  # for the bar
        by_index = {v.index: v for v in pending}
        collector = Collector()
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
        try:
            with BatchProgress(len(pending), sum(durations.values()), config.progress, console) as progress:
                for batch in batches:
                    finished, advanced = collector.add(batch)
                    progress.seconds(advanced)
                    for index, gathered in finished:
                        progress.seconds(max(0.0, durations[index] - gathered.seen_s))
                        record(_finish(by_index[index], gathered, config, model))
                        progress.video()
        finally:
            getattr(batches, "close", lambda: None)()  # stops Ray Data's executor now, not at garbage collection
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any, config: BatchConfig) -> bool:
    """Join the cluster at `address`, or start a local Ray; True if this call started it.
    An already connected driver (a notebook, the tests) is used as it is."""
    if ray.is_initialized():
        return False
    local = config.address is None
    if config.address is not None:
        _check_reachable(config.address)
    ray.init(
        address="local" if local else config.address,
        num_cpus=config.local_cpus if local else None,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    return True


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable head for minutes; a HOST:PORT that refuses is one line at once."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", ray:// client addresses: Ray's own business
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise BadInputError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc})") from None


def _workers(ray: Any, config: BatchConfig) -> int:
    """Engines to run: as asked, else one per GPU share, else one per two CPUs; refuse GPUs the
    cluster does not have (Ray would wait for them forever)."""
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0.0))
    if config.gpus_per_worker > 0:
        fit = int(gpus / config.gpus_per_worker + 1e-9)
        if fit < (config.workers or 1):
            raise BadInputError(
                f"--gpus-per-worker {config.gpus_per_worker:g}: the cluster has {gpus:g} GPUs, "
                f"room for {fit} workers, not {config.workers or 1}"
            )
        return config.workers or fit
    return config.workers or max(1, int(resources.get("CPU", 2.0)) // 2)


def _dataset(
    ray: Any, actor_pool: Any, pending: list[Video], config: BatchConfig, model: _Model, workers: int, threads: int
) -> Any:
    """Decode tasks (one CPU each, one per video) feeding an actor pool of engines. The engines
    ask Ray for GPUs only: on CPU they share the cores with decoding (`threads` each, all the
    cores between them), and Ray Data pauses decoding when inference falls behind, so neither
    stage's share has to be guessed."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is the one the user reads
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its plan and timings, once per run
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    items = [{"video": v.index, "source": v.source, "path": v.path} for v in pending]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.map_batches(
        decode_rows,
        batch_size=1,
        num_cpus=1,
        fn_kwargs={
            "every_s": config.every_s,
            "size": model.card.input_size,
            "skip_similar": SKIP_SIMILAR_DEFAULT,
            "crop": config.crop,
        },
    )
    gpu = config.gpus_per_worker > 0
    return dataset.map_batches(
        InferenceWorker,
        batch_size=config.inference_batch,
        compute=actor_pool(size=workers),
        num_cpus=0,
        num_gpus=config.gpus_per_worker if gpu else None,
        fn_constructor_kwargs={"model": str(model.path), "gpu": gpu, "threads": threads},
    )


def _finish(video: Video, gathered: Gathered, config: BatchConfig, model: _Model) -> Outcome:
    """Account a complete video and write its report atomically; a failed one is only recorded."""
    record = gathered.record
    assert record is not None
    decoded_on, inferred_on = record.node, ";".join(sorted(gathered.inferred_on))
    if record.error:
        log.warning("%s", record.error)
        return Outcome(video, Status.FAILED, error=record.error, decoded_on=decoded_on, inferred_on=inferred_on)
    report = video_report(
        record,
        gathered.probs,
        model.card,
        source=video.source,
        model=str(model.given),
        model_sha256=model.sha256,
        every_s=config.every_s,
        device=gathered.device or "CPU",
    )
    try:
        atomic_write_text(config.out / video.report_name, report_json(report))
    except OSError as exc:
        error = f"{config.out / video.report_name}: cannot write ({exc.strerror or exc})"
        log.warning("%s: %s", video.source, error)
        return Outcome(video, Status.FAILED, error=error, decoded_on=decoded_on, inferred_on=inferred_on)
    log.debug("%s: %d samples, %.1f s -> %s", video.source, report.samples, report.duration_s, video.report_name)
    return Outcome(video, Status.ANALYSED, brief(report.to_dict()), decoded_on=decoded_on, inferred_on=inferred_on)


__all__ = ["CLUSTER_EXTRA", "BatchResult", "exit_status", "run_batch", "run_cli_batch"]
