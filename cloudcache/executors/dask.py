"""Sample a miss on a Dask cluster (for example a GPU box) and bring the result back.

Before submitting, one worker is chosen among those that offer the requested resource (``GPU``
for ``device="gpu"``), the least busy, and its versions of cloudcache, PyMC, PyTensor, JAX,
jaxlib, NumPyro and of every library the backend's key names (nutpie and numba for nutpie) must
equal the caller's. The task runs on that worker only, so its death is seen at once. The model
and the normalised request travel as cloudpickle (workers are the user's own trusted machines);
the result comes back as NetCDF bytes. Progress arrives as Dask events and is printed like a
local run. The cache write stays with the caller.

Checkpoints and final states: the worker keeps them in the caller's store when it reaches it
(:mod:`cloudcache.executors.run_storage`: a local directory only once the worker is shown to
see that very folder; an object store directly), so a remote run resumes, extends a stored run
and keeps its final state as a local one does. When the worker dies mid-run and left a
checkpoint, the run is resumed from it on another suitable worker (one that sees a local
folder; the same version checks), at most ``resumes`` times, and one line says so; anything
else raises :class:`WorkerDied` as before (the checkpoint stays: the same call resumes from it).

Deadlines: connecting to a scheduler given by address (TCP connect, the Dask handshake and the
client's registration) takes at most :func:`connect_deadline` seconds in all, and a refused
port is reported at once; the chosen worker's disappearance from the scheduler (killed, out of
memory, restarted) is seen within :data:`POLL_INTERVAL`; a worker that neither heartbeats to
the scheduler nor sends a progress event for ``stall_timeout`` seconds is abandoned with
:class:`WorkerStalled`, whatever ``timeout=`` is; ``timeout=`` bounds the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudcache.errors import (
    NoSuitableWorker,
    RemoteExecutionError,
    SchedulerUnreachable,
    WorkerDied,
    WorkerStalled,
    WorkerVersionMismatch,
)
from cloudcache.executors.remote_task import (
    CHECKED_PACKAGES,
    installed_versions,
    sample_on_worker,
    tree_from_bytes,
)
from cloudcache.executors.run_storage import RunStorage, offer_storage
from cloudcache.executors.shared_folder import offer, sees, withdraw
from cloudcache.stores.checkpoints import CheckpointFolder, active_folder
from cloudcache.stores.final_states import active_final_states
from cloudcache.ui.announce import announce, format_seconds
from cloudcache.util.forks import ForkSafeLock, after_fork_in_child
from cloudcache.util.validation import check_timeout

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from cloudcache.backends.base import Backend
    from cloudcache.backends.request import SampleRequest

#: Seconds allowed to connect to a scheduler given by address (TCP connect, Dask handshake and
#: client registration, in all) when ``timeout=`` is None or longer.
CONNECT_TIMEOUT = 5.0

#: Seconds a run may go without any sign of life from its worker (scheduler heartbeat, every
#: 0.5-2 s on clusters of up to 200 workers, or progress event) before it is declared stalled;
#: also the deadline of every question asked of the cluster.
STALL_TIMEOUT = 10.0

#: Seconds allowed for cancelling a run and unsubscribing from its events (best effort).
CLEANUP_SECONDS = 5.0

#: Seconds between two checks that the worker running a task is still alive.
POLL_INTERVAL = 0.5

#: How many times a run whose worker died is resumed on another worker from its checkpoint.
RESUMES = 2

_clients: dict[str, Any] = {}
_clients_lock = ForkSafeLock()
#: Clients a fork child inherited: never used (their event-loop threads stayed in the parent),
#: and kept alive so that no destructor waits on those threads.
_inherited_clients: list[Any] = []


def _forget_clients_in_child() -> None:
    _inherited_clients.extend(_clients.values())
    _clients.clear()


after_fork_in_child(_forget_clients_in_child)


def import_distributed() -> Any:
    """``distributed``, or an ImportError naming the extra to install."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(
            "executor=... needs Dask's distributed scheduler, which is not installed. "
            "Install it with: pip install 'cloudcache[dask]'"
        ) from error
    return distributed


def connect_deadline(timeout: float | None) -> float:
    """Seconds allowed to connect: ``timeout=`` when shorter, else :data:`CONNECT_TIMEOUT`."""
    return CONNECT_TIMEOUT if timeout is None else min(float(timeout), CONNECT_TIMEOUT)


def shared_client(address: str, connect_timeout: float = CONNECT_TIMEOUT) -> Any:
    """One client per scheduler address for the whole process (connecting costs ~100 ms).

    The scheduler must accept the connection, complete the Dask handshake and register the
    client within ``connect_timeout`` seconds in all (distributed's own handshake read has no
    deadline, so a port that accepts TCP and never speaks would block forever), else
    :class:`SchedulerUnreachable`; a refused port is reported at once (distributed alone
    retries it until its own timeout).
    """
    distributed = import_distributed()
    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status == "running":
            return client
        ends = time.monotonic() + connect_timeout
        probe_scheduler(address, connect_timeout)
        remaining = ends - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError("the handshake took the whole deadline")
            client = within(
                remaining,
                SchedulerUnreachable,
                f"executor={address!r}: registering with the Dask scheduler",
                distributed.Client,
                address,
                timeout=remaining,
                set_as_default=False,
            )
        except (OSError, TimeoutError) as error:  # SchedulerUnreachable is a TimeoutError too
            raise SchedulerUnreachable(
                _unreachable_message(address, connect_timeout, error)
            ) from error
        _clients[address] = client
        return client


def probe_scheduler(address: str, seconds: float) -> None:
    """Open a TCP connection to ``address`` (refused: at once) and complete the Dask handshake,
    both within ``seconds``, or raise :class:`SchedulerUnreachable`."""
    from distributed.comm import connect

    ends = time.monotonic() + seconds
    host_port = tcp_host_port(address)
    if host_port is not None:
        try:
            socket.create_connection(host_port, timeout=seconds).close()
        except OSError as error:
            raise SchedulerUnreachable(_unreachable_message(address, seconds, error)) from error

    async def handshake() -> None:
        left = max(ends - time.monotonic(), 0.01)
        comm = await asyncio.wait_for(connect(address, timeout=left), left)
        await comm.close()

    # A fresh event loop in a helper thread: the caller may be inside a running loop (Jupyter).
    with ThreadPoolExecutor(1, thread_name_prefix="cloudcache-dask-probe") as pool:
        try:
            pool.submit(asyncio.run, handshake()).result()
        except (OSError, TimeoutError) as error:
            raise SchedulerUnreachable(_unreachable_message(address, seconds, error)) from error


def tcp_host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``tcp://``/``tls://`` address (None for other transports)."""
    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls"):
            return None
        host, port = parse_host_port(location)
    except (ValueError, TypeError):
        return None
    return str(host), int(port)


def _unreachable_message(address: str, seconds: float, error: BaseException) -> str:
    detail = str(error) or type(error).__name__
    return (
        f"executor={address!r}: no Dask scheduler answered within {seconds:g} s ({detail}). "
        "Check the address, that the scheduler is running and not hung, and any SSH tunnel "
        "to it; nothing was sampled."
    )


@dataclass(frozen=True)
class RemoteTask:
    """One run to submit: the packed model and request, where it samples, where the worker may
    keep the run's checkpoints and final state, and what the caller is shown."""

    payload: bytes
    backend_name: str
    device: str
    resources: dict[str, float] | None
    storage: RunStorage | None
    quiet: bool
    show_progress: bool


class DaskExecutor:
    """Runs a backend on a Dask worker.

    ``executor``: a scheduler address (``"tcp://gpu-box:8786"``) or a ``distributed.Client``.
    ``timeout``: seconds the whole remote run may take (None: no limit; a dead worker is still
    reported at once and a frozen one after ``stall_timeout``); connecting takes at most
    :func:`connect_deadline` of it.
    ``stall_timeout``: seconds without a heartbeat or progress event from the worker before
    the run is abandoned as stalled (default :data:`STALL_TIMEOUT`).
    ``expected_versions``: versions the workers must have (default: the caller's own; tests
    pass other values to exercise the refusal).
    ``resumes``: how many times a run whose worker died is resumed on another worker from the
    checkpoint it left in the caller's cache folder (default :data:`RESUMES`; 0: never).
    """

    def __init__(
        self,
        executor: Any,
        *,
        timeout: float | None = None,
        stall_timeout: float = STALL_TIMEOUT,
        expected_versions: dict[str, str] | None = None,
        resumes: int = RESUMES,
    ) -> None:
        check_timeout(timeout)
        if isinstance(resumes, bool) or not isinstance(resumes, int) or resumes < 0:
            raise ValueError(f"resumes must be a whole number >= 0; got {resumes!r}")
        try:
            if check_timeout(stall_timeout) is None:
                raise ValueError("None")
        except ValueError:
            raise ValueError(
                f"stall_timeout must be a positive number of seconds; got {stall_timeout!r}"
            ) from None
        distributed = import_distributed()
        if isinstance(executor, str):
            if not executor.strip():
                raise ValueError("executor must be a scheduler address, not an empty string")
            self._address, self._client = executor, None
        elif isinstance(executor, distributed.Client):
            self._address, self._client = str(executor.scheduler.address), executor
        else:
            raise TypeError(
                "executor must be a scheduler address such as 'tcp://host:8786' or a "
                f"distributed.Client; got {type(executor).__name__}"
            )
        self.timeout = timeout
        self.stall_timeout = float(stall_timeout)
        self.expected_versions = expected_versions
        self.resumes = resumes
        self.description = f"dask {self._address}"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = shared_client(self._address, connect_deadline(self.timeout))
        return self._client

    def run(
        self,
        backend: Backend,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
        quiet: bool = False,
    ) -> xr.DataTree:
        client = self.client
        deadline = math.inf if self.timeout is None else time.monotonic() + self.timeout
        resources = {"GPU": 1} if device == "gpu" else None
        workers = suitable_workers(client, resources, self.stall_timeout)
        worker = least_busy(client, workers, self.stall_timeout)
        expected = self.expected_versions or installed_versions(*checked_libraries(backend))
        payload = _pack(model, request)
        folder, final_states = active_folder(), active_final_states()
        dead: list[str] = []
        while True:
            identity = check_versions(client, [worker], expected, self.stall_timeout)
            storage = offer_storage(folder, final_states)
            try:
                task = RemoteTask(
                    payload,
                    backend.name,
                    device,
                    resources,
                    storage,
                    quiet,
                    _wants_progress(request),
                )
                data = self._attempt(client, task, worker, identity, deadline)  # NetCDF bytes
                return tree_from_bytes(data)
            except WorkerDied as died:
                if storage is None or not storage.holds_checkpoint():
                    raise
                dead.append(worker)
                successor = None
                if len(dead) <= self.resumes and folder is not None:
                    probed = folder if storage.needs_probe else None
                    successor = self._successor(client, resources, dead, probed)
                if successor is None:
                    raise WorkerDied(
                        f"{died} Its last checkpoint is kept in {storage.path}: the same call "
                        "resumes from it."
                    ) from died
                announce(
                    f"worker {worker} died; resuming on worker {successor} from its last "
                    "checkpoint",
                    quiet=quiet,
                    level=logging.WARNING,
                )
                worker = successor
            finally:
                if storage is not None:
                    storage.withdraw()

    def _successor(
        self,
        client: Any,
        resources: dict[str, float] | None,
        dead: list[str],
        probed: CheckpointFolder | None,
    ) -> str | None:
        """The least busy worker, other than the ``dead`` ones, that offers ``resources`` and,
        for a local checkpoint folder ``probed``, sees it (an object store's checkpoint needs no
        probe); ``None`` when there is none."""
        try:
            candidates = [
                worker
                for worker in suitable_workers(client, resources, self.stall_timeout)
                if worker not in dead
            ]
            if candidates and probed is not None:
                candidates = self._seeing(client, candidates, probed)
            return least_busy(client, candidates, self.stall_timeout) if candidates else None
        except RemoteExecutionError:  # no worker left, or one died or froze meanwhile
            return None

    def _seeing(self, client: Any, candidates: list[str], folder: CheckpointFolder) -> list[str]:
        """The ``candidates`` that see the checkpoint ``folder`` (a fresh probe, asked of them
        all at once)."""
        shared = offer(folder)
        if shared is None:
            return []
        try:
            seeing = ask_workers(
                client,
                candidates,
                self.stall_timeout,
                "asking the Dask workers whether they see the cache folder",
                sees,
                shared,
            )
            return [worker for worker in candidates if seeing.get(worker) is True]
        finally:
            withdraw(shared)

    def _attempt(
        self, client: Any, task: RemoteTask, worker: str, identity: Any, deadline: float
    ) -> bytes:
        """Run ``task`` on ``worker``: its NetCDF bytes."""
        run_id = uuid.uuid4().hex
        topic = f"cloudcache-{run_id}"
        progress = ProgressPrinter(
            self._address, quiet=task.quiet, show_progress=task.show_progress
        )
        client.subscribe_topic(topic, progress)
        future = client.submit(
            sample_on_worker,
            task.payload,
            task.backend_name,
            task.device,
            topic,
            task.storage,
            key=f"cloudcache-sample-{run_id}",
            pure=False,
            workers=[worker],
            allow_other_workers=False,
            resources=task.resources,
        )
        try:
            return self._wait(client, future, worker, identity, progress, deadline)
        finally:
            with contextlib.suppress(Exception):  # best effort: the cluster may be hung
                if not future.done():
                    within(CLEANUP_SECONDS, RemoteExecutionError, "cancelling", future.cancel)
                within(
                    CLEANUP_SECONDS,
                    RemoteExecutionError,
                    "unsubscribing",
                    client.unsubscribe_topic,
                    topic,
                )

    def _wait(
        self,
        client: Any,
        future: Any,
        worker: str,
        identity: Any,
        progress: ProgressPrinter,
        deadline: float,
    ) -> bytes:
        """The run's result; polls the scheduler every :data:`POLL_INTERVAL` for ``worker``
        (gone or restarted: :class:`WorkerDied`; silent: :class:`WorkerStalled`)."""
        distributed = import_distributed()
        liveness = Liveness(self.stall_timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"the remote run on {self._address} took longer than timeout="
                    f"{self.timeout:g} s; it was cancelled and nothing was cached"
                )
            try:
                return future.result(timeout=min(POLL_INTERVAL, remaining))
            except TimeoutError:
                pass
            except distributed.KilledWorker as error:
                raise WorkerDied(_died_message(self._address, str(error))) from error
            if progress.starts > 1:
                raise WorkerDied(_died_message(self._address, "the task was started again"))
            info = scheduler_workers(client, self.stall_timeout).get(worker)
            if info is None:
                raise WorkerDied(_died_message(self._address, f"worker {worker} is gone"))
            if identity is not None and incarnation(info) != identity:
                raise WorkerDied(_died_message(self._address, f"worker {worker} was restarted"))
            liveness.observe([info.get("last_seen")], progress.last_event)
            if liveness.stalled():
                raise WorkerStalled(
                    f"the Dask worker {worker} on {self._address} "
                    f"sent no heartbeat and no progress for {self.stall_timeout:g} s (frozen, "
                    "stopped or hung); the run was cancelled and nothing was cached"
                )


class Liveness:
    """When a run last showed signs of life: a worker heartbeat seen by the scheduler, an event.

    Times are this process's monotonic clock; the scheduler's ``last_seen`` values are only
    compared with their previous value (the scheduler's clock may differ from ours).
    """

    def __init__(self, stall_timeout: float) -> None:
        self.stall_timeout = stall_timeout
        self.last_alive = time.monotonic()
        self._heartbeats: list[Any] = []

    def observe(self, heartbeats: list[Any], last_event: float) -> None:
        """Record the workers' latest ``last_seen`` values and the last event's arrival."""
        if heartbeats != self._heartbeats:
            self._heartbeats = heartbeats
            self.last_alive = time.monotonic()
        self.last_alive = max(self.last_alive, last_event)

    def stalled(self) -> bool:
        return time.monotonic() - self.last_alive > self.stall_timeout


def within(
    seconds: float,
    error_type: type[RemoteExecutionError],
    what: str,
    function: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """``function(*args, **kwargs)``, or ``error_type`` when it has not returned in ``seconds``.

    Dask's blocking calls (``scheduler_info``, ``run``, ``cancel``) have no deadline of their
    own: a hung scheduler or a frozen worker would block them forever. The call runs in a
    helper thread, which is left to finish in the background on a timeout.
    """
    pool = ThreadPoolExecutor(1, thread_name_prefix="cloudcache-dask-call")
    try:
        future = pool.submit(function, *args, **kwargs)
        try:
            return future.result(timeout=seconds)
        except TimeoutError as error:
            if future.done():
                raise  # the call itself raised TimeoutError
            raise error_type(
                f"{what}: no answer within {seconds:g} s (a hung scheduler or a frozen "
                "worker?); nothing was cached"
            ) from error
    finally:
        pool.shutdown(wait=False)


def scheduler_workers(client: Any, seconds: float = STALL_TIMEOUT) -> dict[str, Any]:
    """The scheduler's worker table, asked of the scheduler itself with a deadline.

    Not ``Client.scheduler_info()``: it returns the client's cached identity, which the client's
    own periodic refresh (every 2 s) replaces with one that lists no workers, so a poll racing
    with it saw a healthy worker as gone (a spurious :class:`WorkerDied`).
    """
    info = within(
        seconds,
        SchedulerUnreachable,
        f"asking the Dask scheduler at {client.scheduler.address} for its workers",
        client.sync,
        client.scheduler.identity,
    )
    return info["workers"]


def suitable_workers(
    client: Any, resources: dict[str, float] | None, seconds: float = STALL_TIMEOUT
) -> list[str]:
    """Addresses of the workers that offer ``resources``; refuses at once when there are none."""
    workers = scheduler_workers(client, seconds)
    if not workers:
        raise NoSuitableWorker(f"the Dask cluster at {client.scheduler.address} has no workers")
    if not resources:
        return sorted(workers)
    chosen = [
        address
        for address, info in workers.items()
        if all(info.get("resources", {}).get(name, 0) >= need for name, need in resources.items())
    ]
    if not chosen:
        wanted = ", ".join(f"{name}={need}" for name, need in resources.items())
        raise NoSuitableWorker(
            f"no worker of the Dask cluster at {client.scheduler.address} offers {wanted} "
            f"(device='gpu' asks for it). Start one with `dask worker <scheduler> "
            f"--resources GPU=1`, or use device='auto'."
        )
    return sorted(chosen)


def checked_libraries(backend: Any) -> tuple[str, ...]:
    """Every library whose version a worker must share: :data:`CHECKED_PACKAGES` and each one
    the backend's key names (``Backend.libraries``: nutpie and numba for nutpie, jaxlib for
    NumPyro)."""
    return tuple(dict.fromkeys((*CHECKED_PACKAGES, *getattr(backend, "libraries", ()))))


def least_busy(client: Any, workers: list[str], seconds: float = STALL_TIMEOUT) -> str:
    """The one of ``workers`` with the fewest tasks in progress (ties: by address)."""
    if len(workers) == 1:
        return workers[0]
    processing = within(
        seconds,
        SchedulerUnreachable,
        f"asking the Dask scheduler at {client.scheduler.address} for its workers' tasks",
        client.processing,
        workers,
    )
    return min(workers, key=lambda worker: (len(processing.get(worker, ())), worker))


def ask_workers(
    client: Any,
    workers: list[str],
    seconds: float,
    what: str,
    function: Callable[..., Any],
    *args: Any,
) -> dict[str, Any]:
    """``client.run(function, *args)`` on ``workers``, watching them while it waits.

    A worker that leaves the scheduler meanwhile (killed: distributed would retry the refused
    connection for its own 30 s) is :class:`WorkerDied` within :data:`POLL_INTERVAL`; no answer
    in ``seconds`` is :class:`WorkerStalled`.
    """
    address = client.scheduler.address
    ends = time.monotonic() + seconds
    pool = ThreadPoolExecutor(1, thread_name_prefix="cloudcache-dask-run")
    try:
        future = pool.submit(client.run, function, *args, workers=workers)
        while True:
            try:
                return future.result(timeout=max(min(POLL_INTERVAL, ends - time.monotonic()), 0))
            except TimeoutError:
                if future.done():
                    raise  # the call itself raised TimeoutError
            except OSError as error:  # the connection to a worker closed: it died
                raise WorkerDied(_died_message(address, f"{what}: {error}")) from error
            if time.monotonic() >= ends:
                raise WorkerStalled(
                    f"{what}: no answer within {seconds:g} s (a hung scheduler or a frozen "
                    "worker?); nothing was cached"
                )
            alive = scheduler_workers(client, max(ends - time.monotonic(), POLL_INTERVAL))
            gone = [worker for worker in workers if worker not in alive]
            if gone:
                raise WorkerDied(_died_message(address, f"worker {', '.join(gone)} is gone"))
    finally:
        pool.shutdown(wait=False)


def check_versions(
    client: Any, workers: list[str], expected: dict[str, str], seconds: float = STALL_TIMEOUT
) -> Any:
    """Refuse when any of ``workers`` has library versions other than ``expected``.

    Returns the first worker's :func:`incarnation` as it answered.
    """
    found = ask_workers(
        client,
        workers,
        seconds,
        f"asking the Dask workers {', '.join(workers)} for their library versions",
        installed_versions,
        *expected,
    )
    problems = []
    for worker, versions in sorted(found.items()):
        for name, wanted in sorted(expected.items()):
            have = versions.get(name, "not installed")
            if have != wanted:
                problems.append(f"{worker}: {name} {have} (caller has {wanted})")
    if problems:
        raise WorkerVersionMismatch(
            "the Dask workers' library versions differ from this process's, so their results "
            "would not match the cache key: " + "; ".join(problems) + ". Install the same "
            "versions on the workers (or restart them after upgrading)."
        )
    info = scheduler_workers(client, seconds).get(workers[0])
    if info is None:
        raise WorkerDied(_died_message(client.scheduler.address, f"worker {workers[0]} is gone"))
    return incarnation(info)


def incarnation(info: dict[str, Any]) -> tuple[Any, Any]:
    """What tells one process of a worker from the next at the same address (a nanny restarts
    a killed worker with a fixed ``--worker-port`` there): its name and its fresh scratch
    directory, from the scheduler's worker table."""
    return info.get("id"), info.get("local_directory")


class ProgressPrinter:
    """Receives a run's events from the scheduler and prints them like a local run."""

    def __init__(
        self, address: str, *, quiet: bool, show_progress: bool = True, every: float = 2.0
    ) -> None:
        self.address = address
        self.quiet = quiet
        self.show_progress = show_progress
        self.every = every
        self.starts = 0
        self.worker = ""
        self.last_event = 0.0
        self._last_printed = 0.0

    def __call__(self, event: tuple[float, Any]) -> None:
        _, message = event
        if not isinstance(message, dict):
            return
        self.last_event = time.monotonic()
        stage = message.get("stage")
        if stage == "started":
            self.starts += 1
            self.worker = str(message.get("worker", ""))
            self._say(f"remote run started on {self.worker} ({message.get('backend')})")
        elif stage == "progress" and self.show_progress:
            now = time.monotonic()
            if now - self._last_printed >= self.every:
                self._last_printed = now
                self._say(f"remote progress: {_chain_summary(message.get('chains', {}))}")
        elif stage == "running" and self.show_progress:
            self._say(f"remote run still going ({format_seconds(message.get('seconds', 0))})")
        elif stage == "done":
            self._say(
                f"remote run done on {message.get('worker')} in "
                f"{format_seconds(message.get('seconds', 0))}"
            )
        elif stage == "failed":
            self._say(f"remote run failed on {message.get('worker')}: {message.get('error')}")

    def _say(self, text: str) -> None:
        announce(text, quiet=self.quiet)


def _chain_summary(chains: dict[str, Any]) -> str:
    parts = []
    for chain, (done, total, tuning) in sorted(chains.items()):
        parts.append(f"chain {chain} {done}/{total} {'tuning' if tuning else 'sampling'}")
    return ", ".join(parts) or "waiting for the first draws"


def _pack(model: Any, request: Any) -> bytes:
    import cloudpickle

    try:
        return cloudpickle.dumps((model, request))
    except Exception as error:
        raise RemoteExecutionError(
            f"the model cannot be sent to a Dask worker ({type(error).__name__}: {error}); "
            "sample it in-process with executor=None"
        ) from error


def _wants_progress(request: Any) -> bool:
    return request.arguments.get("progressbar") is not False


def _died_message(address: str, detail: str) -> str:
    return (
        f"the Dask worker running this sample died ({detail}); nothing was cached. "
        f"Check the worker's memory and logs on {address}."
    )
