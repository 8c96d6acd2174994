"""The code that runs on a Dask worker: unpack the model, sample it, send back NetCDF bytes.

Progress travels to the caller as Dask events on a per-run topic (``started``, ``progress``
with per-chain draw counts, ``running`` heartbeats, ``done`` or ``failed``). When the worker
reaches the caller's store (:mod:`cloudcache.executors.run_storage`: a directory it is shown to
see, or an object store), a resumable run saves its checkpoints there, resumes from one,
extends a stored run and keeps its final state, as a local run does. The result is
returned as NetCDF4 bytes, never as a pickled object, written and read with the netCDF4 C
library (a core dependency; h5netcdf where an environment lacks it): h5netcdf spends ~0.2 s on
each side per posterior in per-variable HDF5 lookups, netCDF4 ~0.05 s. Either engine reads what
the other wrote, so a caller and a worker may differ here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import io
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from cloudcache.util.versions import installed_versions as versions_of

if TYPE_CHECKING:
    from cloudcache.executors.run_storage import RunStorage

#: Packages whose exact versions must match between the caller and a worker, whatever the
#: backend; the executor adds every library the backend's key names (``Backend.libraries``).
CHECKED_PACKAGES: tuple[str, ...] = ("cloudcache", "pymc", "pytensor", "jax", "jaxlib", "numpyro")

#: NetCDF engines for results, fastest first, with the module each needs (each engine reads
#: the other's files).
ENGINES: dict[str, str] = {"netcdf4": "netCDF4", "h5netcdf": "h5netcdf"}

#: The root attribute of a sent result naming the unit of each date not in nanoseconds
#: (NetCDF's decoding gives dates back in nanoseconds).
TIME_UNITS_ATTR = "cloudcache_time_units"

#: Seconds between two progress events a worker sends.
PROGRESS_INTERVAL = 1.0


def installed_versions(*packages: str) -> dict[str, str]:
    """Exact versions of ``packages`` (default :data:`CHECKED_PACKAGES`) here ("missing" when
    not installed)."""
    return versions_of(*(packages or CHECKED_PACKAGES))


@functools.cache
def result_engine() -> str:
    """The first of :data:`ENGINES` installed here (netCDF4 normally; h5netcdf as a fallback)."""
    return next(
        engine for engine, module in ENGINES.items() if importlib.util.find_spec(module) is not None
    )


def tree_to_bytes(tree: Any) -> bytes:
    """Serialise a DataTree (or PyMC 5's InferenceData, as a DataTree) to NetCDF4 bytes; the
    unit of each date not in nanoseconds travels in a root attribute."""
    from cloudcache.compat.pymc import as_tree
    from cloudcache.compat.xarray import time_units
    from cloudcache.stores.files import without_dask_locks

    tree = as_tree(tree)
    units = time_units(tree)
    if units:
        tree = tree.copy(deep=False)
        tree.attrs = {**tree.attrs, TIME_UNITS_ATTR: json.dumps(units)}
    with without_dask_locks():
        return bytes(tree.to_netcdf(engine=result_engine()))


def tree_from_bytes(payload: bytes) -> Any:
    """Load a DataTree from NetCDF4 bytes made by :func:`tree_to_bytes` (with either engine),
    its dates in the units they were sent in."""
    import xarray as xr

    from cloudcache.compat.xarray import with_time_units

    engine = result_engine()
    source = payload if engine == "netcdf4" else io.BytesIO(payload)
    with xr.open_datatree(source, engine=engine) as opened:
        tree = opened.load()
    units = tree.attrs.pop(TIME_UNITS_ATTR, None)
    return with_time_units(tree, json.loads(units)) if units else tree


class _Reporter:
    """Sends progress events for one run on ``topic`` (never raises)."""

    def __init__(self, topic: str, started: float) -> None:
        from distributed import get_worker

        self.topic = topic
        self.worker = get_worker()
        self.task_key = self.worker.get_current_task()
        self.started = started
        self._last = 0.0
        self.interrupted = False
        self._chains: dict[int, list[Any]] = {}

    def send(self, stage: str, **fields: Any) -> None:
        message = {"stage": stage, "worker": self.worker.address, **fields}
        with contextlib.suppress(Exception):  # progress is best effort; the result matters
            self.worker.log_event(self.topic, message)

    def cancelled(self) -> bool:
        """Whether the caller gave up on this run (timeout, Ctrl-C, dead connection)."""
        try:
            state = self.worker.state.tasks.get(self.task_key)
        except Exception:
            return False
        return state is not None and state.state == "cancelled"

    def pymc_callback(self, total: int) -> Any:
        """A ``pm.sample(callback=...)`` that reports per-chain draws, throttled."""

        def callback(trace: Any, draw: Any) -> None:
            self._chains[int(draw.chain)] = [int(draw.draw_idx) + 1, total, bool(draw.tuning)]
            now = time.monotonic()
            if now - self._last < PROGRESS_INTERVAL:
                return
            self._last = now
            if self.cancelled():
                self.interrupted = True  # PyMC returns a partial trace on KeyboardInterrupt
                raise KeyboardInterrupt("cloudcache: the caller cancelled this remote run")
            self.send("progress", chains={str(k): v for k, v in sorted(self._chains.items())})

        return callback

    def heartbeat(self, stop: threading.Event, every: float = 5.0) -> None:
        while not stop.wait(every):
            self.send("running", seconds=round(time.monotonic() - self.started, 1))


def sample_on_worker(
    payload: bytes,
    backend_name: str,
    device: str,
    topic: str,
    storage: RunStorage | None = None,
) -> bytes:
    """Unpickle ``(model, request)``, sample with ``backend_name`` on this worker's device.

    ``storage``: where the run keeps its checkpoint and final state
    (:meth:`~cloudcache.executors.run_storage.RunStorage.on_worker`: a local folder only when
    this worker reads back its probe's nonce; otherwise the run keeps no checkpoint and creates
    nothing). The ``started`` event says which (``checkpoints``). The ``done`` event carries
    the worker's time per phase (``unpack_s``, ``sample_s``, ``encode_s``) next to the total
    ``seconds``.
    """
    import cloudpickle
    import pymc.sampling.mcmc

    from cloudcache.backends.registry import get_backend
    from cloudcache.backends.running import running_backend
    from cloudcache.stores.checkpoints import checkpointing
    from cloudcache.stores.final_states import extending

    arrived = time.monotonic()
    model, request = cloudpickle.loads(payload)
    reporter = _Reporter(topic, started=arrived)
    backend = get_backend(backend_name)
    folder, final_states = storage.on_worker() if storage is not None else (None, None)
    reporter.send("started", backend=backend_name, device=device, checkpoints=folder is not None)
    # The worker's own progress bar would print into its log: progress goes to the caller.
    arguments = dict(request.arguments, progressbar=False)
    if _takes_pymc_callback(backend_name, request):
        arguments["callback"] = reporter.pymc_callback(request.tune + request.draws)
    request = dataclasses.replace(request, arguments=arguments)
    stop = threading.Event()
    beat = threading.Thread(target=reporter.heartbeat, args=(stop,), daemon=True)
    beat.start()
    try:
        sampling = time.monotonic()
        # PyMC's own function, or a cloud() block's dispatcher when this worker runs in the
        # caller's process: inside running_backend() a dispatcher hands every call to PyMC.
        with running_backend(), checkpointing(folder), extending(final_states):
            tree = backend.sample(
                model, request, device=device, pymc_sample=pymc.sampling.mcmc.sample
            )
        if reporter.interrupted:
            raise RuntimeError("cloudcache: remote run cancelled by the caller; result dropped")
        encoding = time.monotonic()
        data = tree_to_bytes(tree)  # PyMC 5's sampler returns InferenceData: converted there
    except BaseException as error:
        reporter.send("failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        stop.set()
    done = time.monotonic()
    reporter.send(
        "done",
        seconds=round(done - arrived, 3),
        unpack_s=round(sampling - arrived, 3),
        sample_s=round(encoding - sampling, 3),
        encode_s=round(done - encoding, 3),
        nbytes=len(data),
    )
    return data


def _takes_pymc_callback(backend_name: str, request: Any) -> bool:
    """PyMC's own NUTS calls ``callback`` per draw; external samplers refuse it."""
    return backend_name == "pymc" and request.arguments.get("nuts_sampler") in (None, "pymc")
