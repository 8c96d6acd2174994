"""Run one function in a forked child with a deadline (and optionally as another user).

A read that hangs (a FIFO, a stalled endpoint) must fail the test, not hang the suite: the
child is killed at the deadline and the test sees :class:`TimeoutError`.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import traceback
from collections.abc import Callable
from typing import Any


def call_in_fork(
    function: Callable[..., Any], *args: Any, timeout: float, user: str | None = None
) -> Any:
    """``function(*args)`` in a forked process (as ``user`` if given); its picklable result."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        try:
            if user is not None:
                record = pwd.getpwnam(user)
                os.setgroups([])
                os.setgid(record.pw_gid)
                os.setuid(record.pw_uid)
            sender.send(("ok", function(*args)))
        except BaseException:
            sender.send(("error", traceback.format_exc()))

    process = context.Process(target=child, daemon=True)
    process.start()
    try:
        if not receiver.poll(timeout):
            raise TimeoutError(f"{function.__name__} did not return within {timeout} s (a hang)")
        status, value = receiver.recv()
    finally:
        if process.is_alive():
            process.kill()
        process.join(10)
    if status != "ok":
        raise RuntimeError(f"{function.__name__} failed in the child:\n{value}")
    return value


def can_switch_user(user: str = "nobody") -> bool:
    """Whether this process may become ``user`` (root, and the user exists)."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return os.geteuid() == 0
