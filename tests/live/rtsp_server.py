#!/usr/bin/python3
"""A loopback RTSP server for the live tests, run as a subprocess with the system Python.

GStreamer's Python bindings come from Debian packages (python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-base/-good/-ugly), not from the project's venv, so this file must not
import anything from the project. It prints READY once the server listens, obeys one-line
commands on stdin (`pattern NAME` switches the test pattern of the running stream, so a test
can time when a change reaches the analyser), and exits cleanly on SIGTERM, SIGINT or when
stdin closes (the test process died).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ELEMENTS = ("videotestsrc", "x264enc", "rtph264pay")


def launch_line(width: int, height: int, fps: int, pattern: str, keyint: int | None = None, bframes: int = 0) -> str:
    """Live test pattern, H.264 with a keyframe every `keyint` frames (default: every second, so a
    new client starts within ~1 s; 0: x264enc's own default, 250 frames, like "smart codec" cameras)
    and `bframes` non-reference B-frames between reference frames (0: none, as most cameras)."""
    gop = fps if keyint is None else keyint
    # keyint 0: x264enc exactly as its defaults (no zerolatency tune either: lookahead and B-frames).
    key = f"tune=zerolatency key-int-max={gop} " if gop else ""
    preset, profile = "ultrafast", ""
    if bframes:  # neither zerolatency nor ultrafast allows B-frames; without b-pyramid none is a reference
        preset, profile = "superfast", "! video/x-h264,profile=main "  # the server would pick baseline
        key = f"key-int-max={gop} " if gop else ""
        key += f"bframes={bframes} b-adapt=false b-pyramid=false rc-lookahead=0 "
    return (
        f"( videotestsrc name=src is-live=true pattern={pattern} "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc speed-preset={preset} {key}bitrate=500 {profile}"
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def clip_line(path: str) -> str:
    """A pre-encoded H.264 MP4 sent as it is (no re-encoding, so many cameras cost the server
    little), paced in real time by the server's clock."""
    return f"( filesrc location={path} ! qtdemux ! rtph264pay name=pay0 pt=96 config-interval=1 )"


def check() -> int:
    """Exit status 0 if every element the stream needs is installed (the fixture asks first)."""
    Gst.init(None)
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        print("missing GStreamer elements: " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


class Server:
    """One shared media per mount point: every client sees the same live stream, as with a real
    camera. `--mounts N` serves N cameras (PATH1 ... PATHN), each its own media."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.loop = GLib.MainLoop()
        self.sources: list[Gst.Element] = []
        self.pattern = args.pattern
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(str(args.port))
        if args.clip:
            line = clip_line(args.clip)
        else:
            line = launch_line(args.width, args.height, args.fps, args.pattern, args.keyint, args.bframes)
        paths = [args.path] if args.mounts == 1 else [f"{args.path}{i}" for i in range(1, args.mounts + 1)]
        for path in paths:
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(line)
            factory.set_shared(True)
            factory.connect("media-configure", self._on_media)
            self.server.get_mount_points().add_factory(path, factory)

    def _on_media(self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_by_name("src")
        if src is None:  # a clip: no pattern to switch
            return
        src.set_property("pattern", self.pattern)
        self.sources.append(src)
        media.connect("unprepared", lambda _m: self.sources.remove(src) if src in self.sources else None)

    def _on_stdin(self, channel: GLib.IOChannel, condition: GLib.IOCondition) -> bool:
        if condition & (GLib.IOCondition.HUP | GLib.IOCondition.ERR):
            self.loop.quit()
            return False
        line = channel.readline()
        if not line:  # EOF: the test process is gone
            self.loop.quit()
            return False
        words = line.split()
        if len(words) == 2 and words[0] == "pattern":
            self.pattern = words[1]
            for src in self.sources:
                src.set_property("pattern", self.pattern)
            print(f"PATTERN {self.pattern}", flush=True)
        return True

    def run(self) -> int:
        if self.server.attach(None) == 0:
            print("ERROR: cannot listen (port in use?)", file=sys.stderr, flush=True)
            return 1
        for signum in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self._quit)
        stdin = GLib.IOChannel.unix_new(sys.stdin.fileno())
        GLib.io_add_watch(stdin, GLib.PRIORITY_DEFAULT, GLib.IOCondition.IN | GLib.IOCondition.HUP, self._on_stdin)
        print("READY", flush=True)
        self.loop.run()
        return 0

    def _quit(self) -> bool:
        self.loop.quit()
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--path", default="/test")
    parser.add_argument("--pattern", default="ball")
    parser.add_argument("--keyint", type=int, default=None, help="frames between keyframes (0: x264's default)")
    parser.add_argument("--bframes", type=int, default=0, help="B-frames between reference frames")
    parser.add_argument("--clip", default=None, help="serve this H.264 MP4 as it is instead of a test pattern")
    parser.add_argument("--mounts", type=int, default=1, help="cameras: PATH1 ... PATHN when more than one")
    parser.add_argument("--check", action="store_true", help="only check that the GStreamer elements exist")
    args = parser.parse_args()
    if args.check:
        return check()
    Gst.init(None)
    code = Server(args).run()
    sys.stdout.flush()
    sys.stderr.flush()
    # Interpreter teardown races GStreamer's streaming threads for a connected client and can
    # crash (SIGSEGV seen once in ~10 runs); the server's work is done, so leave without it.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
