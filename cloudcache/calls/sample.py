"""The hooks of ``pm.sample`` on the cache path: normalise, choose the backend, run a miss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymc as pm

from cloudcache.backends.choose import sampling_device
from cloudcache.backends.failures import failure_reason, remember_failure
from cloudcache.backends.registry import Resolution, next_backend, resolve_backend
from cloudcache.backends.request import DrawsLeftOut, SampleRequest
from cloudcache.calls.audit import audit_failure
from cloudcache.calls.path import Call, CallKind, Plan
from cloudcache.calls.request import normalize_sample_call
from cloudcache.errors import BackendRefused, PassThrough, Uncacheable
from cloudcache.executors import Executor
from cloudcache.util.jsonable import seed_spelling


@dataclass(frozen=True)
class SamplePayload:
    """What a miss needs to run: the resolved backend and PyMC's unpatched sampler."""

    resolution: Resolution
    pymc_sample: Callable[..., Any]


class SampleCall(CallKind):
    """``pm.sample``: keyed by the backend that really samples; misses run on ``executor``."""

    name = "sample"
    uncached_backend = "pymc"

    def __init__(self, model: pm.Model, backend_name: str, device: str, executor: Executor) -> None:
        self.model = model
        self.backend_name = backend_name
        self.device = device
        self.executor = executor

    def normalize(self, call: Call) -> SampleRequest:
        try:
            request = normalize_sample_call(call.function, call.args, call.kwargs)
        except TypeError as error:
            raise PassThrough from error
        if request.uncacheable_reason:
            raise Uncacheable(request.uncacheable_reason, request)
        return request

    def plan(self, request: SampleRequest, call: Call) -> Plan:
        resolution = resolve_backend(self.backend_name, self.model, request, self.device)
        return self.plan_for(request, resolution, call.function)

    def fallback(self, plan: Plan, refused: BackendRefused) -> Plan:
        """The next backend of the chain (the rest of the auto order, else PyMC's sampler)."""
        reason = f"{plan.backend_id} cannot sample this: {refused}"
        payload: SamplePayload = plan.payload
        resolution = next_backend(payload.resolution, self.model, plan.request, reason)
        if resolution is None:
            raise refused
        return self.plan_for(plan.request, resolution, payload.pymc_sample)

    def plan_for(
        self, request: SampleRequest, resolution: Resolution, pymc_sample: Callable[..., Any]
    ) -> Plan:
        return Plan(
            request=request,
            backend_id=resolution.backend_id,
            versions=resolution.backend.library_versions(),
            device=self.miss_device(resolution.backend_id),
            details={
                "draws": request.draws,
                "tune": request.tune,
                "chains": request.chains,
                "random_seed": seed_spelling(request.random_seed),
                "device": self.device,
                **({"choice": resolution.choice} if resolution.choice else {}),
            },
            reason=resolution.reason,
            backend_label=resolution.choice,
            note=pymc_note(resolution),
            payload=SamplePayload(resolution, pymc_sample),
            run_request=self.run_request(request, resolution),
        )

    def run_request(self, request: SampleRequest, resolution: Resolution) -> DrawsLeftOut | None:
        """The run key form of ``request`` when a stored shorter run may be extended: a backend
        that keeps final states and a seeded call (an unseeded one draws new seeds). A remote
        worker keeps them where it reaches the store
        (:mod:`cloudcache.executors.run_storage`)."""
        if not resolution.backend.extendable or request.seed_key is None:
            return None
        return DrawsLeftOut(request)

    def miss_device(self, backend_id: str) -> str:
        """The device the miss line names: resolved here, or the worker's for remote runs."""
        if self.executor.description != "local":  # the worker resolves "auto" itself
            return f"a worker of {self.executor.description} (device={self.device!r})"
        return sampling_device(backend_id, self.device)

    def run(self, plan: Plan, quiet: bool) -> Any:
        """Run the miss; a backend's failure becomes :class:`BackendRefused` (the path then
        asks :meth:`fallback`) and is remembered, so the next such call skips the backend."""
        payload: SamplePayload = plan.payload
        try:
            return self.executor.run(
                payload.resolution.backend,
                self.model,
                plan.request,
                device=self.device,
                pymc_sample=payload.pymc_sample,
                quiet=quiet,
            )
        except BackendRefused as refused:
            if plan.backend_id != "pymc":
                remember_failure(self.model, plan.backend_id, plan.request, str(refused))
            raise
        except Exception as error:
            reason = failure_reason(plan.backend_id, error)
            if reason is None:
                raise
            remember_failure(self.model, plan.backend_id, plan.request, reason)
            raise BackendRefused(reason) from error

    def audit(self, tree: Any) -> str | None:
        return audit_failure(self.model, tree)

    def incomplete(self, request: SampleRequest, tree: Any) -> str:
        """A posterior with fewer draws or chains than asked for: PyMC's sampler returns the
        draws so far when a Ctrl-C stops it, and those are not the result of the request."""
        try:
            sizes = dict(tree["posterior"].sizes)
        except (KeyError, TypeError, AttributeError):
            return ""
        draws, chains = sizes.get("draw"), sizes.get("chain")
        short = draws is not None and draws < request.draws
        if short or (chains is not None and chains < request.chains):
            return (
                f"the sampler stopped early ({draws or 0:,} of {request.draws:,} draws, "
                f"{chains or 0:,} of {request.chains:,} chains: interrupted?)"
            )
        return ""

    def run_uncached(self, call: Call, request: SampleRequest | None) -> Any:
        if request is None:
            return call.run_as_given()
        return call.function(**request.pymc_arguments(model=self.model))

    def uncached_note(self, reason: str) -> str:
        return f"running uncached with PyMC's sampler: {reason}"


def pymc_note(resolution: Resolution) -> str:
    """The line announced when PyMC's sampler takes a call another backend could not sample
    (another backend's miss line names the reason in its choice: ``auto -> nutpie (...)``)."""
    if resolution.backend_id != "pymc" or not resolution.reason:
        return ""
    return f"sampling with PyMC's sampler: {resolution.reason}"
