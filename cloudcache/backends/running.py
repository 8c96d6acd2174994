"""One sampler run at a time per process, and whether the calling context is inside one.

PyMC's samplers switch process-global PyTensor flags with ``pytensor.config.change_flags``,
which is not thread-safe: two threads sampling at once (marimo runs notebooks in threads) can
leave ``pytensor.config.mode`` changed for the rest of the process, and every later draw differs
in its last bits. Sampling is CPU-bound, so serialising costs little. Every backend run (a
miss, an uncached call, a Dask worker's task) holds :func:`running_backend`; a PyMC function
called inside one (a backend calling ``pm.sample``) is PyMC's own business, never the cache's
(:func:`inside_backend`).
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from cloudcache.util.forks import ForkSafeLock

_inside: ContextVar[bool] = ContextVar("cloudcache_inside_backend", default=False)
#: A fork child never inherits it held by a thread that stayed in the parent.
_sampling_lock = ForkSafeLock(reentrant=True)


def inside_backend() -> bool:
    """Whether the calling context is inside a :func:`running_backend` block."""
    return _inside.get()


def running_backend() -> _BackendScope:
    """Context manager for a backend run: runs are serialised, nested PyMC calls pass through."""
    return _BackendScope()


class _BackendScope:
    def __enter__(self) -> None:
        _sampling_lock.acquire()
        self._token: Token[bool] = _inside.set(True)

    def __exit__(self, *exc: object) -> None:
        try:
            _inside.reset(self._token)
        finally:
            _sampling_lock.release()
