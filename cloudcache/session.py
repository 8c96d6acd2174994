"""The ``cloud`` context manager: one session answering ``pm.sample`` calls from a cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymc as pm

from cloudcache.backends.registry import BACKEND_NAMES, DEVICE_NAMES
from cloudcache.calls import dispatch
from cloudcache.calls.find_map import FindMapCall
from cloudcache.calls.fit import FitCall
from cloudcache.calls.path import CachePath, Call, CallKind
from cloudcache.calls.predictive import PREDICTIVE_KINDS, PredictiveCall
from cloudcache.calls.records import CallRecord
from cloudcache.calls.sample import SampleCall
from cloudcache.calls.smc import SmcCall
from cloudcache.executors import Executor, resolve_executor
from cloudcache.stores.base import Store
from cloudcache.stores.resolve import resolve_cache
from cloudcache.ui.display import calls_table
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


class Session:
    """``cloud(model, ...)``: answer ``pm.sample`` and the other inference calls from a cache.

    Cached: ``pm.sample``, ``sample_prior_predictive``, ``sample_posterior_predictive``,
    ``sample_smc``, ``find_MAP`` and ``fit`` (docs/inference-calls.md).

    ``cache``: True (in-process memory), False (no caching), ``"disk"`` (memory in front of
    ``./.cloudcache`` or ``$CLOUDCACHE_DIR``), a directory path, an fsspec URL, or a Store.
    ``overwrite=True`` never reads: it samples and replaces the stored entry.
    ``backend``: ``"auto"`` (per call, the fastest for the model and device: docs/backends.md),
    ``"numpyro"`` (JAX), ``"nutpie"`` or ``"pymc"``. ``device``: ``"auto"``, ``"cpu"``, ``"gpu"``.
    ``quiet=True``: no hit/miss lines (they still go to ``logging.getLogger("cloudcache")``).
    ``storage_options``: passed to fsspec for object stores.
    ``executor``: None (in-process), a Dask scheduler address or ``distributed.Client``.
    ``timeout``: seconds a remote run (or a wait for another process's run) may take.
    ``explain=True``: on a miss, say which key component differs from the nearest stored entry.
    ``copy=True``: a hit returns a writable deep copy. By default a hit from memory returns
    read-only views of the cached arrays (no copy; writing into them raises NumPy's error).
    ``audit=True``: on a ``pm.sample`` hit, check the model's log density (against the recorded
    ``lp``) and deterministics at a few stored draws; a mismatch warns, samples again and
    replaces the entry (``last.audit`` says which check failed).

    The open session counts ``hits`` and ``misses`` and keeps a :class:`CallRecord` per call;
    ``last`` is the most recent one.
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
        self._token: object | None = None

    # -- context protocol ---------------------------------------------------------------
    def __enter__(self) -> Session:
        model = self._requested_model
        if model is None:
            model = pm.Model.get_context(error_if_none=False)
            if model is None:
                raise TypeError(
                    "cloud() needs a model: pass model=... or open it inside `with pm.Model():`"
                )
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
            **{kind.name: kind(model) for kind in (SmcCall, FindMapCall, FitCall)},
        }
        self.model.__enter__()
        try:
            self._token = dispatch.push_session(self)
        except BaseException:
            self.model.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            if self._token is not None:
                dispatch.pop_session(self._token)
                self._token = None
        finally:
            if self.model is not None:
                self.model.__exit__(exc_type, exc, traceback)

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
        return sum(record.hit for record in self.records)

    @property
    def misses(self) -> int:
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


#: ``cc.cloud(model, cache=..., ...)`` opens a :class:`Session`; they are the same thing.
cloud = Session
