"""Every default a user can change, defined once: the CLI, the Python API and the sources read them here."""

from __future__ import annotations

from typing import Literal, get_args

EVERY_S = 1.0  # seconds between analysed frames
TIMEOUT_S = 5.0  # once a stream delivers pictures: seconds without one before it counts as lost
# Opening a stream: seconds to wait for its first decoded picture. A camera sends one only at its
# next keyframe, and many send one every 10 s ("smart codec" modes, x264's default of 250 frames
# at 25 fps); 20 s covers that plus probing.
OPEN_TIMEOUT_S = 20.0
RTSP_TRANSPORT = "tcp"
DeviceName = Literal["auto", "cpu", "cuda", "tensorrt"]  # --device: auto picks TensorRT, then CUDA, then the CPU
DEVICES: tuple[str, ...] = get_args(DeviceName)
# Who decodes rtsp:// cameras: PyAV decodes only the frames sampling needs (keyframes alone when
# they come at least once per sample); "opencv" decodes every frame.
RTSP_BACKEND = "pyav"
RTSP_BACKENDS = ("pyav", "opencv")  # who decodes rtsp:// and rtsps:// URLs (other schemes: PyAV)
CHECKPOINT_S = 10.0  # seconds between atomic rewrites of the report during a run
FLUSH_S = 2.0  # at most this many seconds of timeline are only in memory (flushed and fsynced)
BATCH_SIZE = 8  # sampled frames per inference call on files
SEGMENT_MINUTES = 0.0  # live overlay: 0 = one fragmented MP4; N = a new file every N minutes
VIEW_HOST = "127.0.0.1"  # live view (--view-port): only this machine unless widened with --view-host
VIEW_FPS = 5.0  # live view: at most this many pictures a second per source, whatever the camera sends
METRICS_HOST = "127.0.0.1"  # --metrics-port listens on loopback unless --metrics-host widens it
MQTT_PREFIX = "screentime"  # topic prefix when the --mqtt URL names none
MQTT_UPDATE_S = 10.0  # at most this often an `update` event (and retained totals) per source
SUGGEST_N = 20  # frames `suggest` (and the labeller's "suggested" order) offers
# `screentime serve` (a camera fleet over one config file)
SERVE_HOST = "127.0.0.1"  # the service's HTTP port (API, /metrics, live view): loopback unless a token is set
SERVE_PORT = 8770
SERVE_SEGMENT_MINUTES = 60.0  # a service's overlay: a new file every hour (one file would grow for weeks)
# `serve`'s bounds (`limits:` in its config): cameras per service, an API request's body and its
# JSON nesting, the config file's size (never read past CONFIG_READ_MAX_BYTES, whatever it says).
LIMIT_CAMERAS = 64
LIMIT_BODY_BYTES = 1_000_000
LIMIT_JSON_DEPTH = 8
LIMIT_CONFIG_BYTES = 1_000_000
CONFIG_READ_MAX_BYTES = 16_000_000
# An output that could not write (disk full, permissions, a directory gone) is retried after 1, 2,
# 4 ... seconds, at most this far apart; what it holds stays in memory meanwhile.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
COLLECT_PER_HOUR = 10  # frames saved for labelling per camera and hour (the least certain, one per shot)
COLLECT_PER_DAY = 100
COLLECT_MAX_MB = 500.0  # the whole collect folder of one camera
COLLECT_MAX_MARGIN = 0.5  # only samples whose top two classes are closer than this are worth a label
# Black bars: "auto" finds each source's (and each labelled set's) active area and crops it before
# resizing for the model; "none" shows the model the whole frame; "W:H:X:Y" a fixed area.
CROP = "auto"
# `screentime train`: which top layers of VGG16 learn the labelled sets (none: frozen features only;
# conv3: block5_conv3; block5: all of block 5), and the head on the backbone's maps (global: max-pooled
# features, one verdict per frame; spatial: class presence per map position, pooled over positions).
TUNE = "none"
TUNES = ("none", "conv3", "block5")
TUNE_EPOCHS = 4  # epochs with the tuned layers learning, after the head settles
TUNE_RATE = 1e-5  # their learning rate: low, so the ImageNet filters are adjusted, not replaced
HEAD = "global"
HEADS = ("global", "spatial")
AUDIT_N = 20  # frames `audit --draw` draws for a person to label
