"""JAX internals cloudcache relies on, each behind a named function (``tests/test_compat.py``).

All are about JAX's process-wide state: whether its backends exist yet (after that, the number
of CPU devices is fixed), whether they were started by the parent of a fork child (where they
cannot run), putting its persistent compilation cache back to the state it starts in (it is
then set up again from the current settings at the next compilation), and setting up the
kernels JAX prepares only as it lowers an operation that calls them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

from cloudcache.util.forks import after_fork_in_child

_started_before_fork = False


def backends_initialized() -> bool:
    """Whether JAX has initialised its backends (``jax._src.xla_bridge``), fixing its devices."""
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def reset_compilation_cache() -> None:
    """Put JAX's persistent compilation cache back to its uninitialised state.

    JAX opens the cache once, at the first compilation after a reset, in the directory
    configured then; a reset makes the next compilation read the settings again.
    """
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


#: Custom-call targets whose kernels JAX registers as it starts, ready without any set-up: its
#: element-wise math kernels (``cpu_lgamma_ffi``, ``cu_digamma_ffi``).
_READY_KERNEL = re.compile(r"(cpu|cu|hip)_[a-z0-9]+_ffi")


def needs_lowering_time_kernels(custom_calls: Iterable[str]) -> bool:
    """Whether a program making these custom calls needs :func:`set_up_lowering_time_kernels`
    before it runs (any target but JAX's element-wise math kernels: LAPACK's, the hybrid
    eigensolver's, and any this does not know)."""
    return any(
        "lapack" in target or "hybrid" in target or not _READY_KERNEL.fullmatch(target)
        for target in custom_calls
    )


def set_up_lowering_time_kernels() -> bool:
    """Set up the kernels JAX prepares only while it lowers an operation calling them: LAPACK
    on CPU (Cholesky, triangular solves: ``jax._src.lax.linalg.initialize_lapack``) and the
    GPU's hybrid eigensolver. An executable loaded with ``deserialize_and_load`` was never
    lowered in this process: called before this, it crashes the process (a segmentation fault).

    Returns False where this JAX has no such functions (then such an executable must not be
    loaded; compiling it sets the kernels up).
    """
    try:
        from jax._src.lax import linalg
        from jax._src.lib import gpu_solver

        initialize_lapack = linalg.initialize_lapack
        initialize_hybrid = gpu_solver.initialize_hybrid_kernels if gpu_solver else None
    except (ImportError, AttributeError):
        return False
    initialize_lapack()
    if initialize_hybrid is not None:
        initialize_hybrid()
    return True


def single_device_sharding(device: Any) -> Any:
    """The sharding that places arrays on ``device`` alone: ``make_single_device_sharding``
    where JAX has it (it deprecated constructing ``SingleDeviceSharding`` directly), else the
    class itself (the same object either way)."""
    import jax.sharding

    make = getattr(jax.sharding, "make_single_device_sharding", None)
    return make(device) if make is not None else jax.sharding.SingleDeviceSharding(device)


def started_before_fork() -> bool:
    """Whether this process was forked from one whose JAX backends had started.

    Their thread pools stay in the parent, so every JAX computation in the child waits forever
    (for a process that imported cloudcache before it forked; the check reads no JAX state).
    """
    return _started_before_fork


def _backends_started_if_imported() -> bool:
    # In a fork child: read the inherited state without importing anything.
    xla_bridge = sys.modules.get("jax._src.xla_bridge")
    if xla_bridge is None:
        return False
    try:
        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # an unknown JAX: assume the worst, JAX is not used in this child
        return True


def _note_fork_in_child() -> None:
    global _started_before_fork
    _started_before_fork = _started_before_fork or _backends_started_if_imported()


after_fork_in_child(_note_fork_in_child)
