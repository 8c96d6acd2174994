"""Cached ``pm.sample_prior_predictive`` and ``pm.sample_posterior_predictive``.

A predictive call inside a ``cloud()`` block is keyed like ``pm.sample``: the model's
fingerprint, the normalised arguments (cosmetic ones left out, the seed in its key form), the
pymc/pytensor versions and, for a posterior predictive, a digest of the content PyMC reads from
the trace it was given (:mod:`cloudcache.calls.trace_content`), never the trace object's
identity: an edited trace misses, and every form of one trace (copies, a re-opened file, the
posterior alone) hits one entry.

The stored entry holds only what PyMC returns with ``extend_inferencedata=False``. With
``extend_inferencedata=True`` the predictive groups are added to the caller's tree afterwards,
exactly as PyMC does (same warning on overwritten groups), and that tree is returned.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pymc as pm
import xarray as xr

from cloudcache.calls.path import Call, CallKind, Plan, user_stacklevel
from cloudcache.calls.records import CallRecord
from cloudcache.calls.request import forward_seed_key
from cloudcache.calls.trace_content import trace_identity
from cloudcache.compat.pymc import (
    ONE_STRING_IS_ONE_NAME,
    PREDICTIVE_NAMES_DEDUPLICATED,
    PREDICTIVE_RENAMED_ARGUMENTS,
    default_predictive_outputs,
    default_prior_outputs,
    extend_inferencedata,
    is_inferencedata,
    is_pymc_result,
)
from cloudcache.errors import PassThrough, Uncacheable
from cloudcache.util.jsonable import seed_spelling
from cloudcache.util.versions import installed_versions

PRIOR = "sample_prior_predictive"
POSTERIOR = "sample_posterior_predictive"
PREDICTIVE_KINDS: tuple[str, ...] = (PRIOR, POSTERIOR)

#: The key's backend component for predictive entries (PyMC's forward sampler, always).
FORWARD_BACKEND = "pymc-forward"

#: Arguments that cannot change the draws, plus the two the cache handles itself
#: (``trace`` is keyed by its content, ``extend_inferencedata`` only decides where groups go).
COSMETIC_ARGUMENTS: frozenset[str] = frozenset(
    {
        "progressbar",
        "progressbar_theme",
        "compile_kwargs",
        "model",
        "trace",
        "extend_inferencedata",
    }
)

#: Arguments naming variables or dims: a single string means a one-item list, as in PyMC.
NAME_LIST_ARGUMENTS: tuple[str, ...] = ("var_names", "sample_vars", "freeze_vars", "sample_dims")

#: What ``sample_posterior_predictive`` takes for ``sample_dims=None``.
DEFAULT_SAMPLE_DIMS: tuple[str, ...] = ("chain", "draw")


@dataclass(frozen=True)
class PredictiveRequest:
    """One predictive call after binding against PyMC's signature and resolving defaults.

    ``arguments``: every argument by name, ready to hand back to PyMC. ``trace_id``: the
    trace's identity (``None`` for a prior predictive). ``trace_label``: 8 hex characters of
    it, used in file names. ``default_outputs``: the names a posterior predictive samples when
    neither ``var_names`` nor ``sample_vars`` is given (PyMC 6), keyed as ``var_names``.
    """

    kind: str
    arguments: dict[str, Any] = field(repr=False)
    seed_key: Any
    mode_key: str | None
    trace_id: str | None = None
    trace_label: str = ""
    default_outputs: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """Readable label used in file names: ``prior_draws500``, ``ppc_1a2b3c4d``."""
        if self.kind == PRIOR:
            return f"prior_draws{self.arguments['draws']}"
        prefix = "predictions" if self.arguments.get("predictions") else "ppc"
        return f"{prefix}_{self.trace_label}"

    @property
    def extend(self) -> bool:
        return bool(self.arguments.get("extend_inferencedata"))

    def key_arguments(self) -> dict[str, Any]:
        """The arguments that enter the key, spellings PyMC reads alike made one.

        Cosmetic arguments are removed and the seed is in its key form. Names: a prior
        predictive's ``var_names`` as the sorted set PyMC turns them into; ``freeze_vars`` (a
        set in PyMC) sorted, empty as ``None``; an omitted ``var_names`` as the default PyMC
        picks (``default_outputs``); an omitted posterior ``sample_dims`` as PyMC's
        ``("chain", "draw")``; on PyMC 6, repeats in a posterior predictive's ``var_names`` and
        ``sample_vars`` dropped, and an omitted ``var_names`` with ``sample_vars`` given as
        ``sample_vars``. ``idata_kwargs``: ``None``, ``{}`` and, for a posterior
        predictive, ``{"coords": {}}`` (PyMC's own filling) are one.
        """
        parts = {
            name: value
            for name, value in self.arguments.items()
            if name not in COSMETIC_ARGUMENTS and name not in PREDICTIVE_RENAMED_ARGUMENTS
        }
        prior = self.kind == PRIOR
        for name in NAME_LIST_ARGUMENTS:
            if name in parts:
                unordered = (prior and name == "var_names") or name == "freeze_vars"
                parts[name] = _name_list(parts[name], unordered=unordered)
        if parts.get("freeze_vars") == ():
            parts["freeze_vars"] = None
        if not prior and PREDICTIVE_NAMES_DEDUPLICATED:
            for name in ("var_names", "sample_vars"):
                if isinstance(parts.get(name), tuple):
                    parts[name] = tuple(dict.fromkeys(parts[name]))  # the first of repeats
            if parts.get("var_names") is None and parts.get("sample_vars") is not None:
                parts["var_names"] = parts["sample_vars"]  # PyMC's default outputs
        if not prior and parts.get("sample_dims") is None:
            parts["sample_dims"] = DEFAULT_SAMPLE_DIMS
        spelled_out = parts.get("var_names") is None and parts.get("sample_vars") is None
        if spelled_out and self.default_outputs is not None:
            parts["var_names"] = self.default_outputs  # the default spelled out: one key
        parts["idata_kwargs"] = _idata_key(parts.get("idata_kwargs"), posterior=not prior)
        parts["random_seed"] = self.seed_key
        parts["backend"] = self.mode_key
        return parts

    def pymc_arguments(self) -> dict[str, Any]:
        """Keyword arguments for PyMC's function, never extending the caller's tree."""
        arguments = dict(self.arguments)
        if self.kind == POSTERIOR:
            arguments["extend_inferencedata"] = False
        return arguments


# -- normalisation ---------------------------------------------------------------------------
def normalize_predictive_call(
    kind: str,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    model: pm.Model,
) -> PredictiveRequest:
    """Bind the call against ``function``'s signature (``TypeError`` if PyMC would reject it).

    ``model``: the model PyMC samples (the trace's identity depends on its variable names).
    Raises :class:`Uncacheable` for valid calls the cache cannot key safely.
    """
    if kind not in PREDICTIVE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, PREDICTIVE_KINDS))}")
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    if arguments.get("return_inferencedata") is False:
        raise Uncacheable(
            "`return_inferencedata=False` returns a dict of arrays, which the cache does not store"
        )
    for alias, name in PREDICTIVE_RENAMED_ARGUMENTS.items():
        if arguments.get(alias) is not None:
            arguments[name] = arguments[alias]  # the deprecated spelling wins, as in PyMC
    if kind == PRIOR:
        arguments["draws"] = int(arguments["draws"])
    trace_id, trace_label = (None, "")
    default_outputs = default_prior_outputs(model) if kind == PRIOR else None
    if kind == POSTERIOR:
        trace_id, trace_label = trace_identity(arguments["trace"], model)
        observed = observed_names(arguments["trace"])
        default_outputs = default_predictive_outputs(model, observed)
        observed_rvs = set(model.observed_RVs)
        extra = [name for name in observed if name in model and model[name] not in observed_rvs]
        if default_outputs is None and extra:  # PyMC 5: its default outputs widen with them
            trace_id = f"{trace_id}:observed:{','.join(extra)}"
    return PredictiveRequest(
        kind=kind,
        arguments=arguments,
        seed_key=forward_seed_key(arguments.get("random_seed")),
        mode_key=_mode_key(arguments.get("backend"), arguments.get("compile_kwargs")),
        trace_id=trace_id,
        trace_label=trace_label,
        default_outputs=default_outputs,
    )


def _name_list(value: Any, *, unordered: bool) -> Any:
    """``"y"`` -> ``("y",)``; lists and tuples -> tuples (a sorted set where PyMC makes a set).

    PyMC 5 iterates a string it is given for names: there ``"ab"`` names ``a`` and ``b``.
    """
    if value is None:
        return None
    if isinstance(value, str) and ONE_STRING_IS_ONE_NAME:
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        names = tuple(str(item) for item in value)
        return tuple(sorted(set(names))) if unordered else names
    return value


def _idata_key(value: Any, *, posterior: bool) -> Any:
    """``idata_kwargs`` in key form: ``None`` for what PyMC reads as none at all.

    Both functions read ``None`` as ``{}``; ``sample_posterior_predictive`` fills in
    ``coords={}`` itself when it is missing.
    """
    if not isinstance(value, Mapping):
        return value
    options = dict(value)
    coords = options.get("coords")
    if posterior and isinstance(coords, Mapping) and not coords:
        del options["coords"]
    return options or None


def _mode_key(backend: Any, compile_kwargs: Any) -> str | None:
    """The compile mode in key form: it decides which random streams produce the draws."""
    if backend is not None:
        return str(backend)
    mode = (compile_kwargs or {}).get("mode") if isinstance(compile_kwargs, Mapping) else None
    if mode is None or isinstance(mode, str):
        return mode
    raise Uncacheable(
        "a `compile_kwargs['mode']` object cannot be fingerprinted; pass backend='jax' "
        "(or 'numba', 'c') or a mode name instead"
    )


# -- the trace's observed names -------------------------------------------------------------
def observed_names(trace: Any) -> list[str]:
    """Names in the trace's ``observed_data`` group, in PyMC's iteration order (none if absent)."""
    if not is_pymc_result(trace):
        return []
    observed = trace.get("observed_data", None)
    return [] if observed is None else [str(name) for name in observed]


# -- the call kind ---------------------------------------------------------------------------
class PredictiveCall(CallKind):
    """Hooks of ``sample_prior_predictive`` / ``sample_posterior_predictive`` on the cache path.

    Always PyMC's forward sampler, in this process (forward sampling is cheap next to MCMC).
    """

    uncached_backend = FORWARD_BACKEND

    def __init__(self, kind: str, model: pm.Model) -> None:
        if kind not in PREDICTIVE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, PREDICTIVE_KINDS))}")
        self.name = kind
        self.model = model

    def normalize(self, call: Call) -> PredictiveRequest:
        try:
            request = normalize_predictive_call(
                self.name, call.function, call.args, call.kwargs, self.model
            )
        except TypeError as error:  # Uncacheable (valid, but not keyable) passes on as it is
            raise PassThrough from error
        model = request.arguments.get("model")
        if model is not None and model is not self.model:
            raise PassThrough  # another model, passed positionally: not ours
        return request

    def plan(self, request: PredictiveRequest, call: Call) -> Plan:
        return Plan(
            request=request,
            backend_id=FORWARD_BACKEND,
            versions=installed_versions("pymc", "pytensor"),
            extra={"trace": request.trace_id} if request.trace_id is not None else None,
            details={
                "trace": request.trace_id,
                "random_seed": seed_spelling(request.arguments.get("random_seed")),
            },
            payload=call.function,
        )

    def run(self, plan: Plan, quiet: bool) -> Any:
        return plan.payload(**plan.request.pymc_arguments())

    def run_uncached(self, call: Call, request: Any) -> Any:
        return call.run_as_given()

    def result_details(self, tree: Any) -> dict[str, Any]:
        """``draws`` and ``chains`` of the first group that has them (``cloudcache ls``)."""
        if not isinstance(tree, xr.DataTree):
            return {}
        for node in tree.children.values():
            sizes = node.dataset.sizes
            if "draw" in sizes:
                return {"draws": int(sizes["draw"]), "chains": int(sizes.get("chain", 1))}
        return {}

    def deliver(self, request: PredictiveRequest, tree: Any, record: CallRecord) -> Any:
        """Return ``tree``, or add its groups to the caller's tree as PyMC's extend does."""
        target = request.arguments.get("trace")
        if request.kind != POSTERIOR or not request.extend:
            return tree
        if is_inferencedata(target):
            predictions = bool(request.arguments.get("predictions"))
            return extend_inferencedata(target, tree, predictions=predictions)
        if not isinstance(target, xr.DataTree):
            return tree
        conflicting = (set(target.children) & set(tree.children)) - {
            "observed_data",
            "constant_data",
        }
        if conflicting:
            warnings.warn(
                f"groups {conflicting} already exist in the DataTree and will be overwritten. "
                "To avoid this, set extend_inferencedata=False.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        target.update(tree)
        return target
