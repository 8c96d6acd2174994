"""What a fork child must not inherit: thread locks held by threads that stay in the parent.

``os.fork`` copies one thread, the one that forks. A lock another thread held at that moment
stays held in the child with nobody left to release it, and the child's first ``acquire`` waits
forever at 0 % CPU. :class:`ForkSafeLock` is a thread lock that a fork child gets back free
unless the forking thread itself held it (that thread carries on in the child and releases it).
:func:`after_fork_in_child` runs a module's own reset in every fork child.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from types import TracebackType


def after_fork_in_child(reset: Callable[[], None]) -> None:
    """Run ``reset`` in every child that ``os.fork`` makes from now on (no-op without fork)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=reset)


class ForkSafeLock:
    """A ``threading.Lock`` (``reentrant=True``: ``RLock``) that a fork child never inherits held.

    Use it as the lock it wraps: ``with lock:``, ``acquire``/``release``.
    """

    __slots__ = ("__weakref__", "_depth", "_lock", "_owner", "_reentrant")

    def __init__(self, reentrant: bool = False) -> None:
        self._reentrant = reentrant
        self._lock = threading.RLock() if reentrant else threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        _LOCKS.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire as ``threading.Lock.acquire`` does; returns whether the lock was taken."""
        taken = self._lock.acquire(blocking, timeout)
        if taken:
            self._owner = threading.get_ident()
            self._depth += 1
        return taken

    def release(self) -> None:
        """Release one level (the last one frees the lock)."""
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _free_in_child(self) -> None:
        # Only the forking thread survives: keep the lock if it holds it, else start afresh
        # (another thread may have been half-way through acquiring or releasing).
        if not (self._depth and self._owner == threading.get_ident()):
            self._lock = threading.RLock() if self._reentrant else threading.Lock()
            self._owner = None
            self._depth = 0


_LOCKS: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


def _free_locks_in_child() -> None:
    for lock in list(_LOCKS):
        lock._free_in_child()


after_fork_in_child(_free_locks_in_child)
