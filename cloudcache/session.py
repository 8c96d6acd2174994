"""The ``cloud`` context manager: one session answering ``pm.sample`` calls from a cache."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pymc as pm
import xarray as xr

from cloudcache import patch
from cloudcache.announce import announce, announce_hit, announce_miss, logger
from cloudcache.backends.base import (
    BACKEND_NAMES,
    DEVICE_NAMES,
    Backend,
    BackendRefused,
    Resolution,
    pymc_fallback,
    resolve_backend,
)
from cloudcache.executors import Executor, resolve_executor
from cloudcache.fingerprint import CacheKey, UnkeyableObject, compute_key
from cloudcache.jsonable import jsonable
from cloudcache.records import CallRecord
from cloudcache.request import SampleRequest, normalize_sample_call
from cloudcache.stores.base import Entry, EntryRef, Store, StoreError
from cloudcache.stores.resolve import resolve_cache
from cloudcache.validation import check_scheduler_address, check_timeout
from cloudcache.versions import installed_version


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
    """``cloud(model, ...)``: answer every ``pm.sample`` for ``model`` in the block from a cache.

    ``cache``: True (in-process memory), False (no caching), ``"disk"`` (memory in front of
    ``./.cloudcache`` or ``$CLOUDCACHE_DIR``), a directory path, an fsspec URL, or a Store.
    ``overwrite=True`` never reads: it samples and replaces the stored entry.
    ``backend``: ``"numpyro"`` (JAX) or ``"pymc"``. ``device``: ``"auto"``, ``"cpu"``, ``"gpu"``.
    ``quiet=True``: no hit/miss lines (they still go to ``logging.getLogger("cloudcache")``).
    ``storage_options``: passed to fsspec for object stores.
    ``executor``: None (in-process), a Dask scheduler address or ``distributed.Client``.
    ``timeout``: seconds a remote run (or a wait for another process's run) may take.
    ``explain=True``: on a miss, say which key component differs from the nearest stored entry.

    The open session counts ``hits`` and ``misses`` and keeps a :class:`CallRecord` per call;
    ``last`` is the most recent one.
    """

    def __init__(
        self,
        model: pm.Model | None = None,
        *,
        cache: Any = True,
        overwrite: bool = False,
        backend: str = "numpyro",
        device: str = "auto",
        quiet: bool = False,
        storage_options: dict[str, Any] | None = None,
        executor: Any = None,
        timeout: float | None = None,
        explain: bool = False,
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
        self.backend_name = _check_choice("backend", backend, BACKEND_NAMES)
        self.device = _check_choice("device", device, DEVICE_NAMES)
        self.store: Store | None = resolve_cache(cache, storage_options)
        self.timeout = timeout
        self.executor: Executor = resolve_executor(executor, timeout=timeout)
        self._requested_model = model
        self.model: pm.Model | None = None
        self.records: list[CallRecord] = []
        self._token: object | None = None
        self._call_warned = False

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
        self.model.__enter__()
        try:
            self._token = patch.push_session(self)
        except BaseException:
            self.model.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            if self._token is not None:
                patch.pop_session(self._token)
                self._token = None
        finally:
            if self.model is not None:
                self.model.__exit__(exc_type, exc, traceback)

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
        if kind != "sample":
            from cloudcache.predictive import handle_predictive

            return handle_predictive(self, kind, function, args, kwargs)
        try:
            request = normalize_sample_call(function, args, kwargs)
        except TypeError:
            return function(*args, **kwargs)  # let PyMC report the bad call in its own words
        result = self._sample(function, request)
        from cloudcache.predictive import remember_origin

        remember_origin(result, self.last)  # lets a posterior predictive reuse this key
        return result

    def _sample(self, pymc_sample: Callable[..., Any], request: SampleRequest) -> Any:
        started = time.perf_counter()
        self._call_warned = False  # one cache warning per call at most
        assert self.model is not None
        if request.uncacheable_reason:
            return self._run_uncached(pymc_sample, request, request.uncacheable_reason, started)
        resolution = resolve_backend(self.backend_name, self.model, request)
        try:
            return self._answer(pymc_sample, request, resolution, started)
        except BackendRefused as refused:  # found only once the backend tried: nothing sampled
            fallback = pymc_fallback(f"{resolution.backend_id} cannot sample this: {refused}")
            return self._answer(pymc_sample, request, fallback, started)

    def _answer(
        self,
        pymc_sample: Callable[..., Any],
        request: SampleRequest,
        resolution: Resolution,
        started: float,
    ) -> Any:
        """Read, or sample under the lock, the entry of ``request`` sampled by ``resolution``."""
        assert self.model is not None
        backend, backend_id = resolution.backend, resolution.backend_id
        try:
            key = compute_key(self.model, request, backend_id, backend.library_versions())
        except UnkeyableObject as error:
            return self._run_uncached(pymc_sample, request, f"the model holds {error}", started)
        ref = EntryRef(key=key.hex, slug=key.slug, label=request.label)

        if self.store is not None and not self.overwrite:
            entry = self._read(ref)
            if entry is not None:
                return self._hit(key, entry, started)

        with self._single_flight(ref) as locked:
            if locked:
                entry = self._read(ref)  # another process may have sampled it while we waited
                if entry is not None:
                    return self._hit(key, entry, started)
            return self._miss(
                pymc_sample, request, backend, backend_id, key, ref, started, resolution.reason
            )

    @contextlib.contextmanager
    def _single_flight(self, ref: EntryRef) -> Iterator[bool]:
        """Hold the store's cross-process lock for ``ref``; yields whether a lock is held.

        Stores without locks, ``overwrite=True`` and a lock that cannot be taken (read-only or
        vanished directory) all sample without one: a broken cache never blocks a result.
        """
        flight = getattr(self.store, "single_flight", None)
        if flight is None or self.overwrite:
            yield False
            return
        lock = flight(ref, self.timeout)
        try:
            held = lock.__enter__()
        except Exception as error:
            # Not a warning of its own: the write that follows fails the same way and warns once.
            logger.info("cannot take the cache lock (%s); sampling without it", error)
            yield False
            return
        try:
            yield held is not False  # stores yield False when they hold no lock
        finally:
            lock.__exit__(None, None, None)

    def _miss(
        self,
        pymc_sample: Callable[..., Any],
        request: SampleRequest,
        backend: Backend,
        backend_id: str,
        key: CacheKey,
        ref: EntryRef,
        started: float,
        reason: str = "",
    ) -> xr.DataTree:
        sample_started = time.perf_counter()
        announce_miss(
            prefix=key.prefix,
            model=key.slug,
            label=request.label,
            backend=backend_id,
            device=self.device,
            quiet=self.quiet,
        )
        if reason:
            announce(f"sampling with PyMC's sampler: {reason}", quiet=self.quiet)
        if self.explain:
            from cloudcache.explain import explain_miss

            described = self._metadata(key, request, backend, backend_id, 0.0)
            described["key"] = key.hex
            explain_miss(self.store, described, overwrite=self.overwrite, quiet=self.quiet)
        assert self.model is not None
        with patch.running_backend():
            tree = self.executor.run(
                backend, self.model, request, device=self.device, pymc_sample=pymc_sample
            )
        sampling_seconds = time.perf_counter() - sample_started
        metadata = self._metadata(key, request, backend, backend_id, sampling_seconds)
        if reason:
            metadata["reason"] = reason
        return self._keep("sample", key, ref, tree, metadata, started=started)

    def _keep(
        self,
        kind: str,
        key: CacheKey,
        ref: EntryRef,
        tree: Any,
        metadata: dict[str, Any],
        *,
        started: float,
        storable: bool = True,
    ) -> Any:
        """Store a freshly sampled result (a failing write only warns) and record the miss."""
        location = "uncached"
        if self.store is not None and storable:
            location = self._write(ref, Entry(tree, metadata))
        self.records.append(
            CallRecord(
                kind=kind,
                hit=False,
                key=key.hex,
                location=location,
                seconds=time.perf_counter() - started,
                backend=str(metadata.get("backend", "")),
                sampling_seconds=float(metadata.get("sampling_seconds", 0.0)),
                reason=str(metadata.get("reason", "")),
                metadata=metadata,
            )
        )
        return tree

    def _hit(
        self, key: CacheKey, entry: Entry, started: float, kind: str = "sample"
    ) -> xr.DataTree:
        saved = float(entry.metadata.get("sampling_seconds", 0.0))
        record = CallRecord(
            kind=kind,
            hit=True,
            key=key.hex,
            location=entry.location,
            seconds=time.perf_counter() - started,
            backend=str(entry.metadata.get("backend", "")),
            sampling_seconds=saved,
            reason=str(entry.metadata.get("reason", "")),
            metadata=entry.metadata,
        )
        self.records.append(record)
        announce_hit(
            prefix=key.prefix,
            location=entry.location,
            created=entry.metadata.get("created"),
            saved_seconds=saved,
            quiet=self.quiet,
        )
        return entry.tree

    def _run_uncached(
        self, pymc_sample: Callable[..., Any], request: SampleRequest, reason: str, started: float
    ) -> Any:
        announce(
            f"running uncached with PyMC's sampler: {reason}",
            quiet=self.quiet,
            level=logging.WARNING,
        )
        with patch.running_backend():
            result = pymc_sample(**request.pymc_arguments(model=self.model))
        elapsed = time.perf_counter() - started
        self.records.append(
            CallRecord("sample", False, "", "uncached", elapsed, "pymc", elapsed, reason=reason)
        )
        return result

    def _read(self, ref: EntryRef) -> Entry | None:
        assert self.store is not None
        try:
            found = self.store.lookup(ref, self.timeout)
        except StoreError as error:
            self._warn_once(f"cloudcache: cache read failed, sampling instead: {error}", 5)
            return None
        for problem in found.problems:  # a damaged entry: counts as this call's one warning
            self._warn_once(problem, stacklevel=5)
        if found.entry is not None:
            self.store.record_use(ref)  # prune's record: only hits count as use
        return found.entry

    def _warn_once(self, message: str, stacklevel: int) -> None:
        """Warn about a cache problem once per call; later problems of the call go to the log."""
        if self._call_warned:
            logger.info("%s", message)
            return
        self._call_warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel)

    def _write(self, ref: EntryRef, entry: Entry) -> str:
        assert self.store is not None
        try:
            return self.store.put(ref, entry, self.timeout)
        except Exception as error:  # a failing write never loses a finished result
            self._warn_once(
                f"cloudcache: could not store the result ({error}); returning it uncached",
                stacklevel=5,
            )
            return "uncached"

    def _metadata(
        self,
        key: CacheKey,
        request: SampleRequest,
        backend: Backend,
        backend_id: str,
        sampling_seconds: float,
    ) -> dict[str, Any]:
        return {
            "kind": "sample",
            "model": key.slug,
            "label": request.label,
            "draws": request.draws,
            "tune": request.tune,
            "chains": request.chains,
            "request": jsonable(request.key_arguments()),
            "backend": backend_id,
            "device": self.device,
            "versions": {
                **backend.library_versions(),
                "cloudcache": installed_version("cloudcache"),
            },
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sampling_seconds": round(sampling_seconds, 4),
            "components": jsonable(key.components),
        }


#: ``cc.cloud(model, cache=..., ...)`` opens a :class:`Session`; they are the same thing.
cloud = Session
