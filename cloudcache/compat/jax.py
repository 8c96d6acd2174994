"""JAX internals cloudcache relies on, each behind a named function (``tests/test_compat.py``).

Both are about JAX's process-wide state: whether its backends exist yet (after that, the number
of CPU devices is fixed), and putting its persistent compilation cache back to the state it
starts in (it is then set up again from the current settings at the next compilation).
"""

from __future__ import annotations


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
