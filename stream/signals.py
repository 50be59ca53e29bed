"""The one signal handling of the CLI's long-running commands (`watch`, `serve`).

The first Ctrl-C or SIGTERM asks the run to stop: every report and day file is still written. A
second Ctrl-C forces (KeyboardInterrupt: exit 130). SIGHUP asks for a reload where the command
has one (`serve`: systemctl reload). The handlers before are put back at the end.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def handling_signals(stop: Callable[[], None], reload: Callable[[], None] | None = None) -> Iterator[None]:
    presses = 0

    def on_stop(signum: int, _frame: object) -> None:
        nonlocal presses
        presses += 1
        if presses > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop()

    wanted: dict[signal.Signals, Callable[[int, object], None]] = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop}
    if reload is not None:
        wanted[signal.SIGHUP] = lambda _signum, _frame: reload()
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
