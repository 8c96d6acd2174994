"""Every exception cloudcache raises: one family under :class:`CloudcacheError`.

=========================  ================================================================
family                     meaning
=========================  ================================================================
control flow               :class:`PassThrough`, :class:`Uncacheable`: how a call kind tells
                           the cache path to let PyMC answer, or to run a call uncached;
                           they never reach the caller
names                      :class:`UncompilableName`: a variable name no sampler compiles
keys                       :class:`UnkeyableObject`: a value the key cannot fingerprint (the
                           call runs uncached and says why)
backends                   :class:`BackendRefused`: a backend cannot sample a call (PyMC's
                           own sampler does instead); :class:`SamplerFailure`: a finished run
                           looks broken (nothing is cached)
stores                     :class:`StoreError` (I/O, permissions, network, deadlines, with
                           :class:`EntryUnreadable`, :class:`DeadlineExceeded` and
                           :class:`PlantedLink`) and
                           :class:`CorruptEntry` (a damaged entry: a miss, replaced later)
remote runs                :class:`RemoteExecutionError` and its subclasses: a Dask run was
                           refused or failed on the cluster's side (nothing is cached)
=========================  ================================================================

Where an older built-in base helps callers (``except TimeoutError``, ``except ValueError``) the
class keeps it beside :class:`CloudcacheError`.
"""

from __future__ import annotations

from typing import Any


class CloudcacheError(Exception):
    """Base of every exception cloudcache raises."""


# -- control flow of the cache path ------------------------------------------------------------
class PassThrough(CloudcacheError):
    """Not a call for the cache (PyMC rejects it, or it names another model): PyMC answers it."""


class Uncacheable(CloudcacheError):
    """A valid call the cache cannot key safely; it runs uncached and the message says why.

    ``request``: the normalised request when normalising got that far (else ``None``).
    """

    def __init__(self, reason: str, request: Any = None) -> None:
        super().__init__(reason)
        self.request = request


# -- keys --------------------------------------------------------------------------------------
class UnkeyableObject(CloudcacheError, TypeError):
    """A value whose content cannot be encoded in a process-stable way (the call runs uncached)."""


# -- backends ----------------------------------------------------------------------------------
class UncompilableName(CloudcacheError, ValueError):
    """A model's variable name no sampler can compile (a NUL byte): the call is refused."""


class BackendRefused(CloudcacheError):
    """A backend cannot sample this call; the message says why in one line.

    Found before the key (``Backend.refusal``), the call is keyed and sampled as ``pymc``; found
    only once the backend tried (raised by ``Backend.sample``, never after any draw), the
    session re-keys the call as ``pymc`` and samples it with PyMC's own sampler.
    """


class SamplerFailure(CloudcacheError, RuntimeError):
    """A finished run shows the signs of a broken sampler; nothing was stored."""


# -- stores ------------------------------------------------------------------------------------
class StoreError(CloudcacheError, RuntimeError):
    """A store could not read or write (I/O, permissions, network, a missed deadline)."""


class EntryUnreadable(StoreError):
    """An entry exists but this process may not read it (permissions): not damaged, keep it."""


class DeadlineExceeded(StoreError):
    """An object-store call did not finish within its deadline (it may still be running)."""


class PlantedLink(StoreError):
    """A symbolic link (or other non-folder) where a local store would create, touch, rename or
    delete something below its root: never followed, reported and left alone."""


class CorruptEntry(CloudcacheError, ValueError):
    """A stored entry is unreadable, truncated, tampered with or belongs to another key."""


# -- remote runs -------------------------------------------------------------------------------
class RemoteExecutionError(CloudcacheError, RuntimeError):
    """A remote run was refused or failed for a reason on the cluster's side."""


class WorkerVersionMismatch(RemoteExecutionError):
    """The workers' library versions differ from the caller's."""


class NoSuitableWorker(RemoteExecutionError):
    """No worker offers the requested resource (Dask would wait for one forever)."""


class WorkerDied(RemoteExecutionError):
    """The worker running the task left the cluster before it finished."""


class WorkerStalled(RemoteExecutionError):
    """A worker stopped answering: no heartbeat, progress or reply in time (frozen, hung)."""


class SchedulerUnreachable(RemoteExecutionError, TimeoutError):
    """The scheduler did not accept a connection or complete the Dask handshake in time."""
