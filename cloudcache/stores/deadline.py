"""A total deadline for one object-store call, however slowly the endpoint answers.

botocore's ``read_timeout`` bounds each socket read, so an endpoint that trickles a byte a
second keeps a call going for as long as it likes. Here the whole call has a deadline: async
filesystems (s3fs, gcsfs, adlfs) run the call's coroutine under ``asyncio.wait_for`` on
their own loop, so a late call is cancelled (an interrupted PUT never becomes an object);
other filesystems run the call in a helper thread that is abandoned at the deadline.
A compound call (a listing of several folders, the HDF5 header of an entry read in pieces)
gets one deadline for the whole of it, never one per request.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from cloudcache.errors import DeadlineExceeded

if TYPE_CHECKING:
    import fsspec

#: Seconds an object-store read of one entry may take when ``cloud(timeout=None)``: as long as
#: a stalled endpoint may cost (connect 3 s + one read of 10 s, once retried), so a trickling
#: endpoint never costs more than a silent one.
DEFAULT_READ_DEADLINE = 20.0
#: Seconds an object-store write of one entry may take when ``cloud(timeout=None)``.
DEFAULT_WRITE_DEADLINE = 120.0
#: Seconds a listing (a store's entries, a metadata lookup, a removal) may take in all.
DEFAULT_LIST_DEADLINE = 30.0


def call_with_deadline(
    fs: fsspec.AbstractFileSystem,
    method: str,
    *args: Any,
    seconds: float,
    what: str,
    **kwargs: Any,
) -> Any:
    """``fs.<method>(*args, **kwargs)`` within ``seconds``, else :class:`DeadlineExceeded`."""
    if seconds <= 0:
        raise _late(what, 0.0)
    loop = getattr(fs, "loop", None) if getattr(fs, "async_impl", False) else None
    coroutine_function = getattr(fs, f"_{method}", None)
    if loop is not None and coroutine_function is not None and loop.is_running():
        import asyncio  # an async filesystem has imported it already

        future = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(coroutine_function(*args, **kwargs), seconds), loop
        )
        try:
            return future.result(seconds + 5)
        except (TimeoutError, concurrent.futures.TimeoutError) as error:
            future.cancel()
            raise _late(what, seconds) from error
    return run_with_deadline(lambda: getattr(fs, method)(*args, **kwargs), seconds, what)


T = TypeVar("T")


def run_with_deadline(call: Callable[[], T], seconds: float, what: str) -> T:
    """``call()`` in a helper thread, its result within ``seconds`` or :class:`DeadlineExceeded`.

    For compound calls that have no single coroutine to cancel; a late call is abandoned (it
    may go on in the background, its result dropped).
    """
    if seconds <= 0:
        raise _late(what, 0.0)
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


class Deadline:
    """One total deadline for a call made of several requests: each gets what is left."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; :class:`DeadlineExceeded` once none are."""
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise _late(self.what, self.seconds)
        return remaining

    def call(self, fs: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """``fs.<method>(...)`` within what is left; a miss names the whole deadline."""
        try:
            return call_with_deadline(
                fs, method, *args, seconds=self.left(), what=self.what, **kwargs
            )
        except DeadlineExceeded as error:
            raise _late(self.what, self.seconds) from error


def _late(what: str, seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"{what} did not finish within {seconds:g} s (the endpoint is too slow or stalled; "
        "the deadline comes from cloud(timeout=...))"
    )
