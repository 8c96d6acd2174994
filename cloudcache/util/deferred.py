"""Work a backend may leave until the call's result is stored: PyMC's convergence checks.

The checks only log warnings (a cache hit never repeats them), yet on long runs they take
seconds (rank sorts of every draw). Run after the entry is written, a process killed while they
run leaves a stored result, and the same call is a hit instead of sampling's fixed costs again.
Outside a call path that collects it (a backend used directly, a remote worker), the work runs
at once, where it was asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

_pending: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "cloudcache_after_storing", default=None
)


@contextlib.contextmanager
def collecting_after_storing() -> Iterator[list[Callable[[], None]]]:
    """Collect the work :func:`after_storing` defers inside the block; the caller runs it (in
    order, in its own thread) once the result is stored."""
    pending: list[Callable[[], None]] = []
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)


def after_storing(work: Callable[[], None]) -> None:
    """Run ``work`` once the call's result is stored, or now when nothing collects it."""
    pending = _pending.get()
    if pending is None:
        work()
    else:
        pending.append(work)
