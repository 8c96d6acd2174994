"""The one cache path every dispatched call takes: read -> hit | single flight -> miss -> keep.

A *call kind* (``pm.sample``, the two predictive functions, whatever comes next) supplies only
narrow hooks: how to normalise the call into a request, what enters the key (a :class:`Plan`),
how to run a miss and how to hand the result back. Everything else is written once here:
reading the store, the cross-process single flight, announcing, ``explain=``, ``overwrite=``,
storing, the metadata record, the one-warning-per-call rule and the :class:`CallRecord`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymc as pm
import xarray as xr

from cloudcache.backends.running import running_backend
from cloudcache.calls.names import refuse_uncompilable_names
from cloudcache.calls.records import CallRecord
from cloudcache.compat.pymc import as_pymc_result, as_tree
from cloudcache.errors import BackendRefused, PassThrough, StoreError, Uncacheable, UnkeyableObject
from cloudcache.fingerprint import CacheKey, compute_key
from cloudcache.fingerprint.model import model_variable_digests
from cloudcache.stores.base import Entry, EntryRef, Store
from cloudcache.stores.checkpoints import RESUMED_ATTR, checkpointing
from cloudcache.stores.final_states import EXTENDED_ATTR, FinalStates, extending
from cloudcache.ui.announce import announce, announce_hit, announce_miss, logger
from cloudcache.util.deferred import collecting_after_storing
from cloudcache.util.jsonable import jsonable
from cloudcache.util.versions import installed_version


@dataclass(frozen=True)
class Call:
    """One dispatched call: PyMC's original ``function`` and the arguments it was given."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def run_as_given(self) -> Any:
        return self.function(*self.args, **self.kwargs)


@dataclass(frozen=True)
class Plan:
    """What was decided about one call before its key: the request and who runs it.

    ``request`` offers ``label`` and ``key_arguments()``. ``backend_id`` and ``versions`` enter
    the key; ``extra`` holds further key components (a posterior predictive's trace identity).
    ``details`` are kind-specific metadata fields. ``reason`` says why ``backend_id`` samples
    (stored); ``note`` is announced on a miss. ``payload`` is whatever the kind's ``run`` needs.
    ``run_request`` (a request's key form without the count a stored run can be extended by,
    ``None``: not extendable) gives the *run key*: every other key component stays the same.
    """

    request: Any
    backend_id: str
    versions: dict[str, str]
    device: str = "cpu"
    extra: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    note: str = ""
    payload: Any = None
    #: How the miss line names the backend when more than its id helps (``auto -> nutpie (...)``).
    backend_label: str = ""
    run_request: Any = None


class CallKind:
    """The hooks of one call kind. Subclasses override ``normalize``, ``plan``, ``run`` and
    ``run_uncached``; the rest have defaults."""

    #: The kind's name: the dispatched function's name, stored as ``metadata["kind"]``.
    name: str = ""
    #: The backend named in the record of an uncached run.
    uncached_backend: str = "pymc"

    def normalize(self, call: Call) -> Any:
        """The call's request. Raises :class:`PassThrough` or :class:`Uncacheable`."""
        raise NotImplementedError

    def plan(self, request: Any, call: Call) -> Plan:
        """Decide the backend and every key component of ``request``."""
        raise NotImplementedError

    def fallback(self, plan: Plan, refused: BackendRefused) -> Plan:
        """The plan after ``plan``'s backend refused once it tried, or failed; raises
        ``refused`` when no backend is left (each plan's fallback must come nearer to that)."""
        raise refused

    def run(self, plan: Plan, quiet: bool) -> Any:
        """Run a miss (already inside :func:`running_backend`)."""
        raise NotImplementedError

    def run_uncached(self, call: Call, request: Any) -> Any:
        """Run a call the cache cannot key (``request`` may be ``None``)."""
        raise NotImplementedError

    def uncached_note(self, reason: str) -> str:
        return f"running {self.name} uncached: {reason}"

    def audit(self, tree: Any) -> str | None:
        """``audit=True``: the check a stored ``tree`` fails against the model, or None."""
        return None  # a kind without an audit serves its hits unchecked

    def result_details(self, tree: Any) -> dict[str, Any]:
        """Metadata fields only known once the result exists."""
        return {}

    def incomplete(self, request: Any, tree: Any) -> str:
        """Why ``tree`` is not the whole result of ``request`` (a sampler stopped by Ctrl-C
        returns what it has), or ``""``. An incomplete result is returned, never stored."""
        return ""

    def result(self, tree: Any) -> Any:
        """The stored (or just computed) ``tree`` as this kind's function returns its result."""
        return as_pymc_result(tree)

    def deliver(self, request: Any, tree: Any, record: CallRecord) -> Any:
        """What the caller gets for ``tree`` (hit or miss) described by ``record``."""
        return tree


@dataclass
class CachePath:
    """Answers calls for one open session from ``store`` (``None``: nothing is cached).

    ``copy=True`` hands out a writable deep copy on a hit instead of the store's tree.
    ``audit=True`` checks every hit with ``kind.audit``; an entry that fails is run again and
    replaced.
    """

    model: pm.Model
    store: Store | None
    records: list[CallRecord]
    overwrite: bool = False
    quiet: bool = False
    explain: bool = False
    timeout: float | None = None
    copy: bool = False
    audit: bool = False
    _call_warned: bool = field(default=False, init=False)

    # -- the path -----------------------------------------------------------------------
    def answer(self, kind: CallKind, call: Call) -> Any:
        """Answer ``call`` of ``kind``: read -> hit | single flight -> miss -> keep -> record."""
        started = time.perf_counter()
        self._call_warned = False  # one cache warning per call at most
        refuse_uncompilable_names(self.model)
        try:
            request = kind.normalize(call)
        except PassThrough:
            return call.run_as_given()  # PyMC reports a bad call in its own words
        except Uncacheable as uncacheable:
            return self.uncached(kind, call, uncacheable.request, str(uncacheable), started)
        plan = kind.plan(request, call)
        while True:
            try:
                return self.answer_plan(kind, call, plan, started)
            except BackendRefused as refused:  # found once the backend tried, or it failed
                plan = kind.fallback(plan, refused)  # the next backend, with its own key

    def answer_plan(self, kind: CallKind, call: Call, plan: Plan, started: float) -> Any:
        """Read, or run under the single flight, the entry ``plan`` names."""
        try:
            key = compute_key(
                self.model,
                plan.request,
                plan.backend_id,
                plan.versions,
                kind=kind.name,
                extra=plan.extra,
            )
        except UnkeyableObject as error:
            reason = f"the model holds {error}"
            return self.uncached(kind, call, plan.request, reason, started)
        ref = EntryRef(key=key.hex, slug=key.slug, label=plan.request.label)

        failed_audit = ""
        if self.store is not None and not self.overwrite:
            entry = self.read(ref)
            if entry is not None:
                failed_audit = self.audit_failure(kind, entry)
                if not failed_audit:
                    return self.hit(kind, plan, key, entry, started)
        with self.single_flight(ref) as locked:
            if locked and not failed_audit:  # another process may have run it while we waited
                entry = self.read(ref)
                if entry is not None:
                    return self.hit(kind, plan, key, entry, started)
            return self.miss(kind, plan, key, ref, started, failed_audit)

    def audit_failure(self, kind: CallKind, entry: Entry) -> str:
        """With ``audit=True``: "" if ``entry`` passes ``kind.audit``, else the failed check."""
        failed = kind.audit(entry.tree) if self.audit else None
        if not failed:
            return ""
        self.warn_once(
            f"cloudcache: the cached entry failed the hit audit ({failed}); the key missed a "
            "change of the model: sampling again and replacing the entry"
        )
        return failed

    def hit(self, kind: CallKind, plan: Plan, key: CacheKey, entry: Entry, started: float) -> Any:
        """Record and announce a hit; the caller gets the store's tree (or a copy)."""
        tree = entry.tree.copy(deep=True) if self.copy else entry.tree
        saved = float(entry.metadata.get("sampling_seconds", 0.0))
        record = self.record(kind, key, entry.location, entry.metadata, started, hit=True)
        announce_hit(
            prefix=key.prefix,
            location=entry.location,
            created=entry.metadata.get("created"),
            saved_seconds=saved,
            quiet=self.quiet,
        )
        return kind.deliver(plan.request, kind.result(tree), record)

    def miss(
        self,
        kind: CallKind,
        plan: Plan,
        key: CacheKey,
        ref: EntryRef,
        started: float,
        failed_audit: str = "",
    ) -> Any:
        """Run the call, keep the result (a failing write only warns) and record the miss.

        ``failed_audit``: the check the stored entry this run replaces failed (recorded).
        """
        announce_miss(
            prefix=key.prefix,
            model=key.slug,
            label=plan.request.label,
            backend=plan.backend_label or plan.backend_id,
            device=plan.device,
            quiet=self.quiet,
        )
        if plan.note:
            announce(plan.note, quiet=self.quiet)
        if self.explain:
            from cloudcache.ui.explain import explain_miss  # the catalog: only when asked for

            described = {**self.metadata(kind, plan, key, 0.0), "key": key.hex}
            explain_miss(self.store, described, overwrite=self.overwrite, quiet=self.quiet)
        run_started = time.perf_counter()
        folder = self.store.checkpoint_folder(ref) if self.store is not None else None
        if folder is not None and self.overwrite:
            folder.clear()  # overwrite=True samples from the start
        run_key, final = self.final_states(kind, plan, ref, reuse=not failed_audit)
        with (
            running_backend(),
            checkpointing(folder),
            extending(final),
            collecting_after_storing() as after_storing,
        ):
            tree = as_tree(kind.run(plan, self.quiet))
        metadata = self.metadata(kind, plan, key, time.perf_counter() - run_started)
        metadata.update(kind.result_details(tree))
        if run_key:
            metadata["run_key"] = run_key
        for attr, field_name in ((RESUMED_ATTR, "resumed"), (EXTENDED_ATTR, "extended")):
            said = tree.attrs.pop(attr, None) if isinstance(tree, xr.DataTree) else None
            if said:
                metadata[field_name] = str(said)
                announce(str(said), quiet=self.quiet)
        location = "uncached"
        unfinished = kind.incomplete(plan.request, tree)
        if unfinished:
            message = f"{unfinished}: returning it as the sampler did, not storing it"
            announce(message, quiet=self.quiet, level=logging.WARNING)
        elif self.store is not None and isinstance(tree, xr.DataTree):
            location = self.write(ref, Entry(tree, metadata))
        if folder is not None and location != "uncached":
            folder.served()  # the finished result is stored: the checkpoint has served
        for work in after_storing:  # PyMC's convergence checks: a kill from here on finds it
            work()
        record = self.record(kind, key, location, metadata, started, hit=False, audit=failed_audit)
        return kind.deliver(plan.request, kind.result(tree), record)

    def final_states(
        self, kind: CallKind, plan: Plan, ref: EntryRef, *, reuse: bool = True
    ) -> tuple[str, FinalStates | None]:
        """The run key of an extendable ``plan`` and where its store keeps final states.

        The run key is computed exactly as the key, from ``plan.run_request`` instead of the
        request: a stored run is extended only when every other component is equal. With
        ``reuse=False`` (an entry failed its audit) or ``overwrite=True`` nothing stored is
        extended; the finished run still keeps its final state.
        """
        if self.store is None or plan.run_request is None:
            return "", None
        try:
            run_key = compute_key(
                self.model,
                plan.run_request,
                plan.backend_id,
                plan.versions,
                kind=kind.name,
                extra=plan.extra,
            ).hex
        except UnkeyableObject:
            return "", None
        final = self.store.final_states(ref, run_key)
        if final is not None:
            final.reuse = reuse and not self.overwrite  # else: sample from the start
        return run_key, final

    def uncached(
        self, kind: CallKind, call: Call, request: Any, reason: str, started: float
    ) -> Any:
        """Run a call the cache cannot key, saying why (a warning: the user may want to know)."""
        announce(kind.uncached_note(reason), quiet=self.quiet, level=logging.WARNING)
        with running_backend():
            result = kind.run_uncached(call, request)
        elapsed = time.perf_counter() - started
        self.records.append(
            CallRecord(
                kind.name, False, "", "uncached", elapsed, kind.uncached_backend, elapsed, reason
            )
        )
        return result

    # -- steps --------------------------------------------------------------------------
    def metadata(
        self, kind: CallKind, plan: Plan, key: CacheKey, sampling_seconds: float
    ) -> dict[str, Any]:
        """The record stored next to an entry (and compared by ``explain=True``)."""
        metadata: dict[str, Any] = {
            "kind": kind.name,
            "model": key.slug,
            "label": plan.request.label,
            **plan.details,
            "request": jsonable(plan.request.key_arguments()),
            "backend": plan.backend_id,
            "versions": {**plan.versions, "cloudcache": installed_version("cloudcache")},
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sampling_seconds": round(sampling_seconds, 4),
            "components": jsonable(key.components),
            # each variable's own definition: lets an explanation name what changed
            "variables": model_variable_digests(self.model),
        }
        if plan.reason:
            metadata["reason"] = plan.reason
        return metadata

    def record(
        self,
        kind: CallKind,
        key: CacheKey,
        location: str,
        metadata: dict[str, Any],
        started: float,
        *,
        hit: bool,
        audit: str = "",
    ) -> CallRecord:
        record = CallRecord(
            kind=kind.name,
            hit=hit,
            key=key.hex,
            location=location,
            seconds=time.perf_counter() - started,
            backend=str(metadata.get("backend", "")),
            sampling_seconds=float(metadata.get("sampling_seconds", 0.0)),
            reason=str(metadata.get("reason", "")),
            metadata=metadata,
            audit=audit,
        )
        self.records.append(record)
        return record

    def read(self, ref: EntryRef) -> Entry | None:
        """The stored entry, or None; store problems become this call's one warning.

        The store reports a damaged entry as a value (``Lookup.problems``) and an I/O failure
        or a missed deadline as :class:`StoreError`; a hit is recorded as use (for prune).
        """
        assert self.store is not None
        try:
            found = self.store.lookup(ref, self.timeout)
        except StoreError as error:
            self.warn_once(f"cloudcache: cache read failed, sampling instead: {error}")
            return None
        for problem in found.problems:  # a damaged entry: counts as this call's one warning
            self.warn_once(problem)
        if found.entry is not None:
            self.store.record_use(ref)
        return found.entry

    def write(self, ref: EntryRef, entry: Entry) -> str:
        """Store ``entry``; a failing write warns and the result is returned uncached."""
        assert self.store is not None
        try:
            return self.store.put(ref, entry, self.timeout)
        except Exception as error:  # a failing write never loses a finished result
            self.warn_once(
                f"cloudcache: could not store the result ({error}); returning it uncached"
            )
            return "uncached"

    @contextlib.contextmanager
    def single_flight(self, ref: EntryRef) -> Iterator[bool]:
        """Hold the store's cross-process lock for ``ref``; yields whether a lock is held.

        Stores without locks, ``overwrite=True`` and a lock that cannot be taken (read-only or
        vanished directory) all run without one: a broken cache never blocks a result.
        """
        if self.store is None or self.overwrite:
            yield False
            return
        lock = self.store.single_flight(ref, self.timeout)
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

    def warn_once(self, message: str) -> None:
        """Warn about a cache problem once per call; later problems of the call go to the log."""
        if self._call_warned:
            logger.info("%s", message)
            return
        self._call_warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=user_stacklevel())


def user_stacklevel() -> int:
    """The stack level of the first frame outside cloudcache and PyMC (the user's call)."""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (name.startswith(("cloudcache", "pymc")) or name == "contextlib"):
            return level
        frame, level = frame.f_back, level + 1
    return 1
