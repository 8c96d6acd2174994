"""Cached ``pm.sample_prior_predictive`` and ``pm.sample_posterior_predictive``.

A predictive call inside a ``cloud()`` block is keyed like ``pm.sample``: the model's
fingerprint, the normalised arguments (cosmetic ones left out, the seed in its key form), the
pymc/pytensor versions and, for a posterior predictive, the identity of the trace it was given.

The trace's identity is cheap when the trace came from the cache: every tree a ``pm.sample``
call returned from (or wrote to) the cache is remembered by object identity together with its
key and run stamp, so it needs no hashing. Any other trace is identified by a checksum of the
groups PyMC reads (the posterior or root dataset, ``constant_data`` and ``observed_data``).

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

from cloudcache.calls.origins import TRACE_GROUPS, known_origin
from cloudcache.calls.path import Call, CallKind, Plan, user_stacklevel
from cloudcache.calls.records import CallRecord
from cloudcache.calls.request import forward_seed_key
from cloudcache.compat.pymc import (
    ONE_STRING_IS_ONE_NAME,
    PREDICTIVE_RENAMED_ARGUMENTS,
    TRACE_TREE_NAME,
    as_tree,
    extend_inferencedata,
    is_inferencedata,
    is_pymc_result,
)
from cloudcache.errors import PassThrough, Uncacheable, UnkeyableObject
from cloudcache.fingerprint.canonical import content_digest
from cloudcache.stores.format.netcdf import tree_checksum
from cloudcache.util.jsonable import seed_spelling
from cloudcache.util.versions import installed_versions

PRIOR = "sample_prior_predictive"
POSTERIOR = "sample_posterior_predictive"
PREDICTIVE_KINDS: tuple[str, ...] = (PRIOR, POSTERIOR)

#: The key's backend component for predictive entries (PyMC's forward sampler, always).
FORWARD_BACKEND = "pymc-forward"

#: Arguments that cannot change the draws, plus the two the cache handles itself
#: (``trace`` is keyed by identity, ``extend_inferencedata`` only decides where groups go).
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


@dataclass(frozen=True)
class PredictiveRequest:
    """One predictive call after binding against PyMC's signature and resolving defaults.

    ``arguments``: every argument by name, ready to hand back to PyMC. ``trace_id``: the
    trace's identity (``None`` for a prior predictive). ``trace_label``: 8 hex characters of
    it, used in file names.
    """

    kind: str
    arguments: dict[str, Any] = field(repr=False)
    seed_key: Any
    mode_key: str | None
    trace_id: str | None = None
    trace_label: str = ""

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
        """The arguments that enter the key (cosmetic ones removed, seed in its key form)."""
        parts = {
            name: value
            for name, value in self.arguments.items()
            if name not in COSMETIC_ARGUMENTS and name not in PREDICTIVE_RENAMED_ARGUMENTS
        }
        for name in NAME_LIST_ARGUMENTS:
            if name in parts:
                parts[name] = _name_list(parts[name], sort=self.kind == PRIOR)
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
    kind: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PredictiveRequest:
    """Bind the call against ``function``'s signature (``TypeError`` if PyMC would reject it).

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
    if kind == POSTERIOR:
        trace_id, trace_label = trace_identity(arguments["trace"])
    return PredictiveRequest(
        kind=kind,
        arguments=arguments,
        seed_key=forward_seed_key(arguments.get("random_seed")),
        mode_key=_mode_key(arguments.get("backend"), arguments.get("compile_kwargs")),
        trace_id=trace_id,
        trace_label=trace_label,
    )


def _name_list(value: Any, *, sort: bool) -> Any:
    """``"y"`` -> ``("y",)``; lists and tuples -> tuples (sorted where order cannot matter).

    PyMC 5 iterates a string it is given for names: there ``"ab"`` names ``a`` and ``b``.
    """
    if value is None:
        return None
    if isinstance(value, str) and ONE_STRING_IS_ONE_NAME:
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        names = tuple(str(item) for item in value)
        return tuple(sorted(names)) if sort else names
    return value


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


# -- the trace's identity --------------------------------------------------------------------
def trace_identity(trace: Any) -> tuple[str, str]:
    """``(identity, 8-character label)`` of a posterior predictive's ``trace`` argument."""
    if is_pymc_result(trace):
        origin = known_origin(trace)
        if origin is not None:
            return origin.run_id, origin.label
        checksum = tree_checksum(_read_groups(as_tree(trace)))
        return content_digest(("content", checksum)), checksum[:8]
    if isinstance(trace, xr.DataTree):
        raise TypeError(f"this PyMC reads a trace from an {TRACE_TREE_NAME}, not a DataTree")
    if isinstance(trace, xr.Dataset):
        checksum = tree_checksum(xr.DataTree(dataset=trace))
        return content_digest(("content", checksum)), checksum[:8]
    if isinstance(trace, list) and all(isinstance(point, dict) for point in trace):
        try:
            checksum = content_digest(("points", trace))
        except UnkeyableObject as error:
            raise Uncacheable(f"the trace holds {error}") from error
        return checksum, checksum[:8]
    raise Uncacheable(
        f"a trace of type {type(trace).__name__} is not cached "
        f"(pass the {TRACE_TREE_NAME} from pm.sample)"
    )


def _read_groups(tree: xr.DataTree) -> xr.DataTree:
    """A shallow tree of just the groups ``sample_posterior_predictive`` reads from ``tree``."""
    source = "posterior" if "posterior" in tree.children else None
    groups: dict[str, xr.Dataset] = {
        "/trace": (tree[source] if source else tree).to_dataset(inherit=True)
    }
    for group in TRACE_GROUPS[1:]:
        if group in tree.children:
            groups[f"/{group}"] = tree[group].to_dataset(inherit=True)
    return xr.DataTree.from_dict(groups)


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
            request = normalize_predictive_call(self.name, call.function, call.args, call.kwargs)
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
