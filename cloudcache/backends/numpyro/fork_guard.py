"""JAX cannot run in a fork child of a process that had started it: the backend refuses there.

JAX's runtime keeps thread pools that ``os.fork`` leaves behind in the parent; a compiled
sampler called in the child waits for them forever. In such a child the numpyro backend
refuses every call before its key (``backend="auto"`` then takes the next backend, an explicit
``backend="numpyro"`` falls back to PyMC's sampler) and ``cloudcache.prewarm`` compiles
nothing. Workers made with the ``spawn`` start method run NumPyro normally.
"""

from __future__ import annotations

from cloudcache.compat.jax import started_before_fork
from cloudcache.errors import BackendRefused

#: The refusal's reason, as the miss line and ``run.last.reason`` show it.
FORK_REFUSAL = (
    "JAX cannot run in a process forked from one that had already started JAX (its threads "
    "stay in the parent); create worker processes with the 'spawn' start method, e.g. "
    "multiprocessing.get_context('spawn').Pool(), to sample with NumPyro in them"
)


def refuse_in_fork_child() -> None:
    """Raise :class:`BackendRefused` in a fork child of a process whose JAX had started."""
    if started_before_fork():
        raise BackendRefused(FORK_REFUSAL)
