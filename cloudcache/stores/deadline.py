"""A total deadline for one object-store call, however slowly the endpoint answers.

botocore's ``read_timeout`` bounds each socket read, so an endpoint that trickles a byte a
second keeps a call going for as long as it likes. Here the whole call has a deadline: async
filesystems (s3fs, gcsfs, adlfs) run the call's coroutine under ``asyncio.wait_for`` on
their own loop, so a late call is cancelled (an interrupted PUT never becomes an object);
other filesystems run the call in a helper thread that is abandoned at the deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import fsspec

from cloudcache.errors import DeadlineExceeded

#: Seconds an object-store read of one entry may take when ``cloud(timeout=None)``.
DEFAULT_READ_DEADLINE = 60.0
#: Seconds an object-store write of one entry may take when ``cloud(timeout=None)``.
DEFAULT_WRITE_DEADLINE = 120.0


def call_with_deadline(
    fs: fsspec.AbstractFileSystem, method: str, *args: Any, seconds: float, what: str
) -> Any:
    """``fs.<method>(*args)``, finished within ``seconds`` or :class:`DeadlineExceeded`."""
    loop = getattr(fs, "loop", None) if getattr(fs, "async_impl", False) else None
    coroutine_function = getattr(fs, f"_{method}", None)
    if loop is not None and coroutine_function is not None and loop.is_running():
        future = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(coroutine_function(*args), seconds), loop
        )
        try:
            return future.result(seconds + 5)
        except (TimeoutError, concurrent.futures.TimeoutError) as error:
            future.cancel()
            raise _late(what, seconds) from error
    return _in_thread(lambda: getattr(fs, method)(*args), seconds, what)


T = TypeVar("T")


def _in_thread(call: Callable[[], T], seconds: float, what: str) -> T:
    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as error:  # handed to the caller below
            outcome.set_exception(error)

    threading.Thread(target=run, name="cloudcache-io", daemon=True).start()
    try:
        return outcome.result(seconds)
    except concurrent.futures.TimeoutError as error:
        raise _late(what, seconds) from error


def _late(what: str, seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"{what} did not finish within {seconds:g} s (the endpoint is too slow or stalled; "
        "the deadline comes from cloud(timeout=...))"
    )
