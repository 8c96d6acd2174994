"""Write-behind: the disk takes a file's pages while the file is still being written.

A file written by a library (netCDF4 streaming an entry into its temporary file) leaves every
page dirty in memory until the ``fsync`` before the rename, which then waits for all of them:
~80 ms for a 200 MB entry, a third of writing it. :func:`write_behind` asks the kernel, every
``period`` seconds while the block runs, to start writing out what is dirty so far
(``sync_file_range(SYNC_FILE_RANGE_WRITE)``: it starts the write-out and returns, keeping the
pages cached), so the disk works alongside the writer and the ``fsync`` finds little left.

This only starts write-outs early: the caller still ``fsync``\\ s before it renames (that is
what makes the file durable). Where the call is missing (not Linux) or refused (a filesystem
that does not support it), the block runs as it would without this.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable, Iterator

#: ``SYNC_FILE_RANGE_WRITE`` (linux/fs.h): start writing out dirty pages, do not wait.
_START_WRITE_OUT = 2

#: Seconds between two requests: at ~1 GB/s of writing, ~50 MB left for the final ``fsync``.
PERIOD = 0.05


@contextlib.contextmanager
def write_behind(descriptor: int, period: float = PERIOD) -> Iterator[None]:
    """While the block runs, start writing out ``descriptor``'s dirty pages every ``period`` s.

    The descriptor must stay open until the block ends; the caller still ``fsync``\\ s it.
    """
    start = _start_write_out()
    if start is None:
        yield
        return
    stop = threading.Event()

    def keep_writing_out() -> None:
        while not stop.wait(period):
            if start(descriptor) != 0:  # refused here (say, a filesystem without it): stop
                return

    thread = threading.Thread(target=keep_writing_out, name="cloudcache-write-behind", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@functools.cache
def _start_write_out() -> Callable[[int], int] | None:
    """``descriptor -> 0 or -1``: the libc ``sync_file_range`` for the whole file, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return lambda descriptor: call(descriptor, 0, 0, _START_WRITE_OUT)
