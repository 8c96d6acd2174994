"""Ctrl-C that waits for a safe point: the loop that asked saves its work, then stops.

Inside :func:`deferred_interrupt` the first SIGINT (Ctrl-C, a notebook's "interrupt kernel")
only sets :attr:`Interrupt.requested` and says so in one line; the loop checks the flag where its
state is consistent, saves what it has and raises ``KeyboardInterrupt`` itself. A second Ctrl-C
raises at once, as it would without the block. The block changes nothing outside the main thread
(signals reach only it) or where a program installed its own SIGINT handler; a request that
no check saw by the end of the block raises ``KeyboardInterrupt`` there.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

_log = logging.getLogger("cloudcache")


@dataclass
class Interrupt:
    """Whether a Ctrl-C asked the running loop to stop."""

    requested: bool = False


@contextlib.contextmanager
def deferred_interrupt(message: str, *, enabled: bool = True) -> Iterator[Interrupt]:
    """Defer the first Ctrl-C inside the block to the loop's next check (``message``: the
    line said when it comes). ``enabled=False``, another thread, or a SIGINT handler other
    than Python's own: nothing is deferred."""
    interrupt = Interrupt()
    if (
        not enabled
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield interrupt
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupt.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second one stops at once
        _log.warning(message)

    signal.signal(signal.SIGINT, handler)
    try:
        yield interrupt
    finally:
        if signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupt.requested:  # came after the loop's last check
        raise KeyboardInterrupt
