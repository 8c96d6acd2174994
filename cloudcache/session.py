"""The ``cloud`` context manager: one session answering ``pm.sample`` calls from a cache."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pymc as pm

from cloudcache.backends.registry import BACKEND_NAMES, DEVICE_NAMES
from cloudcache.calls import dispatch
from cloudcache.calls.find_map import FindMapCall
from cloudcache.calls.fit import FitCall
from cloudcache.calls.laplace import LaplaceCall
from cloudcache.calls.path import CachePath, Call, CallKind
from cloudcache.calls.pathfinder import PathfinderCall
from cloudcache.calls.predictive import PREDICTIVE_KINDS, PredictiveCall
from cloudcache.calls.records import CallRecord
from cloudcache.calls.sample import SampleCall
from cloudcache.calls.smc import SmcCall
from cloudcache.executors import Executor, resolve_executor
from cloudcache.stores.base import Store
from cloudcache.stores.resolve import resolve_cache
from cloudcache.ui.display import calls_table, session_text
from cloudcache.util.forks import ForkSafeLock
from cloudcache.util.validation import check_scheduler_address, check_timeout


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {type(value).__name__} {value!r}")
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(map(repr, choices))
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return value


def _model_label(model: pm.Model | None) -> str:
    name = getattr(model, "name", "") if model is not None else ""
    return repr(name) if name else f"<unnamed pm.Model at {id(model):#x}>"


class Session:
    """``cloud(model, ...)``: answer ``pm.sample`` and the other inference calls from a cache.

    Cached: ``pm.sample``, ``sample_prior_predictive``, ``sample_posterior_predictive``,
    ``sample_smc``, ``find_MAP`` and ``fit``, and pymc-extras' ``fit_pathfinder`` and
    ``fit_laplace`` when it is installed (docs/inference-calls.md).

    Inside the ``with`` block, ``pm.sample``, ``pm.sample_prior_predictive`` and
    ``pm.sample_posterior_predictive`` for ``model`` are answered from the cache when the same
    model, data and arguments were sampled before, and sampled and stored otherwise. Each call
    leaves a `CallRecord` on ``records``; ``last`` is the most recent one.

    A session may be entered again, nested or from another thread, for the same model: each
    ``with`` block counts, and PyMC's functions are restored when the last open block in
    the process closes.

    Args:
        model: The PyMC model. ``None``: the model of the surrounding ``with pm.Model():``.
        cache: Where results are kept. ``True``: in-process memory; ``False``: no caching;
            ``"disk"``: memory in front of ``./.cloudcache`` (or ``$CLOUDCACHE_DIR``); a
            directory path; an fsspec URL such as ``"s3://bucket/prefix"``; or a `Store`.
        overwrite: Never read: sample again and replace the stored entry atomically.
        backend: What samples a miss: ``"auto"`` (per call, the fastest for the model and
            device; see the backends guide), ``"numpyro"`` (JAX), ``"nutpie"`` or ``"pymc"``.
        device: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        quiet: No hit/miss lines (they still go to ``logging.getLogger("cloudcache")``).
        storage_options: Passed to fsspec for object stores (credentials, endpoint).
        executor: Where misses run: ``None`` (this process), a Dask scheduler address such as
            ``"tcp://gpu-box:8786"``, or a ``distributed.Client``.
        timeout: Seconds a remote run (or a wait for another process's run) may take.
        explain: On a miss, say which key component differs from the nearest stored entry.
        copy: A hit returns a writable deep copy. By default a hit from memory returns
            read-only views of the cached arrays (no copy; writing into them raises NumPy's
            error).
        audit: On a ``pm.sample`` hit, check the model's log density (against the recorded
            ``lp``) and deterministics at a few stored draws; a mismatch warns, samples again
            and replaces the entry (``last.audit`` says which check failed).

    Raises:
        TypeError: ``model`` is not a ``pymc.Model``, or a flag is not ``True``/``False``.
        ValueError: ``backend`` or ``device`` is not one of the choices above.

    Examples:
        ```python
        import pymc as pm
        import cloudcache as cc

        with cc.cloud(model, cache="disk") as run:
            idata = pm.sample(1000, tune=1000, chains=4, random_seed=1)

        run.last  # CallRecord(kind='sample', hit=False, key='04e4ec4cd06aa20b', ...)
        print(run)  # the settings, a summary and one line per call
        ```

        Sampling on a remote GPU worker, keeping results in a shared bucket:

        ```python
        bucket, worker = "s3://team-bucket/cloudcache", "tcp://gpu-box:8786"
        with cc.cloud(model, cache=bucket, executor=worker, device="gpu"):
            idata = pm.sample(2000, tune=1000, chains=4, random_seed=1)
        ```
    """

    def __init__(
        self,
        model: pm.Model | None = None,
        *,
        cache: Any = True,
        overwrite: bool = False,
        backend: str = "auto",
        device: str = "auto",
        quiet: bool = False,
        storage_options: dict[str, Any] | None = None,
        executor: Any = None,
        timeout: float | None = None,
        explain: bool = False,
        copy: bool = False,
        audit: bool = False,
    ) -> None:
        check_timeout(timeout)
        check_scheduler_address(executor)
        if model is not None and not isinstance(model, pm.Model):
            raise TypeError(f"model must be a pymc.Model or None; got {type(model).__name__}")
        if storage_options is not None and not isinstance(storage_options, dict):
            raise TypeError(
                f"storage_options must be a dict or None; got {type(storage_options).__name__}"
            )
        self.overwrite = _check_bool("overwrite", overwrite)
        self.quiet = _check_bool("quiet", quiet)
        self.explain = _check_bool("explain", explain)
        self.copy = _check_bool("copy", copy)
        self.audit = _check_bool("audit", audit)
        self.backend_name = _check_choice("backend", backend, BACKEND_NAMES)
        self.device = _check_choice("device", device, DEVICE_NAMES)
        self.store: Store | None = resolve_cache(cache, storage_options)
        self.timeout = timeout
        self.executor: Executor = resolve_executor(executor, timeout=timeout)
        self._requested_model = model
        self.model: pm.Model | None = None
        self.records: list[CallRecord] = []
        self.path: CachePath | None = None
        self.kinds: dict[str, CallKind] = {}
        self._entering = ForkSafeLock()

    # -- context protocol ---------------------------------------------------------------
    def __enter__(self) -> Session:
        """Open a block. Re-entrant: ``with run:`` inside ``with run:`` (or in another thread)
        is the same session, for the same model, answering into the same records."""
        with self._entering:
            already_open = dispatch.open_blocks(self) > 0
            model = self._block_model(already_open)
            if not already_open:
                self._bind(model)
            model.__enter__()
            try:
                dispatch.open_block(self)
            except BaseException:
                model.__exit__(None, None, None)
                raise
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        block = dispatch.innermost_block(self)
        if block is None:  # an exit without an open block closes nothing
            return
        try:
            dispatch.close_block(block)
        finally:
            # PyMC's model contexts are per thread: only the opening thread can leave its own.
            if self.model is not None and block.thread == threading.get_ident():
                self.model.__exit__(exc_type, exc, traceback)

    def _block_model(self, already_open: bool) -> pm.Model:
        """The model a new block is for; one session answers for one model at a time."""
        model = self._requested_model
        if model is None:
            model = pm.Model.get_context(error_if_none=False)
        if model is None and already_open:
            model = self.model
        if model is None:
            raise TypeError(
                "cloud() needs a model: pass model=... or open it inside `with pm.Model():`"
            )
        if already_open and model is not self.model:
            raise RuntimeError(
                f"this cloud() session is already open for model {_model_label(self.model)}; "
                f"open a new cloud() for model {_model_label(model)}"
            )
        return model

    def _bind(self, model: pm.Model) -> None:
        """Build the cache path and the call kinds of a session's first open block."""
        self.model = model
        self.path = CachePath(
            model,
            self.store,
            self.records,
            overwrite=self.overwrite,
            quiet=self.quiet,
            explain=self.explain,
            timeout=self.timeout,
            copy=self.copy,
            audit=self.audit,
        )
        self.kinds = {
            "sample": SampleCall(model, self.backend_name, self.device, self.executor),
            **{kind: PredictiveCall(kind, model) for kind in PREDICTIVE_KINDS},
            **{
                kind.name: kind(model)
                for kind in (SmcCall, FindMapCall, FitCall, PathfinderCall, LaplaceCall)
            },
        }

    def __repr__(self) -> str:  # terminals: the settings, a summary and one line per call
        cache = self.store.description if self.store is not None else "off"
        settings = f"cache={cache!r}, backend={self.backend_name!r}, device={self.device!r}"
        return session_text(settings, self.records)

    def _repr_html_(self) -> str:  # Jupyter: a table of the calls and the time saved
        return calls_table(self.records)

    def _mime_(self) -> tuple[str, str]:  # marimo: the same table
        return "text/html", calls_table(self.records)

    # -- counters -----------------------------------------------------------------------
    @property
    def last(self) -> CallRecord | None:
        """Record of the most recent call answered by this session."""
        return self.records[-1] if self.records else None

    @property
    def hits(self) -> int:
        """Number of calls answered from the cache."""
        return sum(record.hit for record in self.records)

    @property
    def misses(self) -> int:
        """Number of calls that sampled (stored, or run uncached)."""
        return sum(not record.hit for record in self.records)

    # -- dispatch -----------------------------------------------------------------------
    def accepts(self, model: Any) -> bool:
        """Whether a call for ``model`` (``None``: the context's model) belongs to this session."""
        if model is None:
            model = pm.Model.get_context(error_if_none=False)
        return model is self.model

    def handle(
        self, kind: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Answer one dispatched call of ``kind`` (``function`` is PyMC's original)."""
        if self.path is None:
            raise RuntimeError("a cloud() session answers calls only inside its `with` block")
        return self.path.answer(self.kinds[kind], Call(function, args, kwargs))


#: ``cc.cloud(model, cache=..., ...)`` opens a `Session`; they are the same thing.
cloud = Session
