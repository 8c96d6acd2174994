"""Fingerprint of a PyMC model: its graphs, data, code, coords and settings, as named components.

Split in two so that an in-place edit is always seen and a repeated call stays cheap:

* the **structure** (graph topology, op properties, types, variable names and roles) is walked
  once per model and memoised while the model's variables stay the same;
* the **content** (every array the graph holds: constants, observed values, index arrays, masks,
  shared values; and every Python value that can change in place: functions with their closures
  and globals, transforms, user classes) is re-hashed on every call.

The log density is not walked as a graph: it is fixed by the generative graph, the transforms,
``check_bounds`` and the pymc/pytensor versions, except where user code supplies it
(``CustomDist``/``DensityDist`` ``logp=``, custom ops, custom transforms). That code is reached
from the generative graph (a ``CustomDist`` op's class carries its registered ``logp``) and keyed
by content. See ``docs/cache-key.md``.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pytensor.graph.basic import Constant
from pytensor.tensor.sharedvar import SharedVariable

from cloudcache.compat.pytensor import is_instance
from cloudcache.fingerprint.canonical import GraphEncoder, content_digest, live_digest
from cloudcache.fingerprint.code import qualified_name
from cloudcache.fingerprint.digest import Digest
from cloudcache.fingerprint.graph import variable_digests

#: PyTensor settings that change what a compiled graph computes (the mode, linker and
#: optimizer choice only change how, like ``compile_kwargs``, and stay out).
PYTENSOR_FLAGS: tuple[str, ...] = ("floatX", "cast_policy", "numba__fastmath", "tensor__cmp_sloppy")


@dataclass(frozen=True)
class StructureWalk:
    """The reusable part of a model's fingerprint: valid while the model's variables are."""

    signature: tuple[int, ...]
    digest: str
    #: Values whose content is re-hashed on every call (arrays, functions, objects).
    live: tuple[Any, ...]
    #: Shared variables in the order the walk met them.
    shared_leaves: tuple[SharedVariable, ...]


_walks: weakref.WeakKeyDictionary[pm.Model, StructureWalk] = weakref.WeakKeyDictionary()


def distinct(variables: list[Any]) -> list[Any]:
    """``variables`` with repeats of the same object dropped, in their first order.

    A variable listed twice is one variable. PyMC 5's ``sample_posterior_predictive`` appends
    the observed variables to the model's own ``observed_RVs`` list again on every call with a
    trace holding ``observed_data``: the model is the same, and so is its key.
    """
    return list({id(variable): variable for variable in variables}.values())


def _signature(model: pm.Model) -> tuple[int, ...]:
    """Identities of the model's variables: any added or replaced variable changes it.

    ``id()`` is used only to detect change within this process, never as key content. A
    variable listed again (PyMC 5's posterior predictive) is no change, as in the walk.
    """
    observed_rvs = distinct(model.observed_RVs)
    variables = [*model.free_RVs, *observed_rvs, *model.deterministics, *model.potentials]
    observed = [model.rvs_to_values[rv] for rv in observed_rvs]
    transforms = [model.rvs_to_transforms.get(rv) for rv in model.free_RVs]
    return tuple(map(id, [*variables, *observed, *transforms, *model.data_vars]))


def walk_structure(model: pm.Model) -> StructureWalk:
    """The model's structure walk, from the memo when its variables have not changed."""
    signature = _signature(model)
    cached = _walks.get(model)
    if cached is not None and cached.signature == signature:
        return cached
    digest = Digest()
    live: list[Any] = []
    encoder = GraphEncoder(digest, live)
    roles = {
        "free": distinct(model.free_RVs),
        "observed": distinct(model.observed_RVs),
        "deterministic": distinct(model.deterministics),
        "potential": distinct(model.potentials),
    }
    for role, variables in roles.items():
        ids = encoder.graph(variables)
        digest.token(role, ",".join(f"{v.name}={i}" for v, i in zip(variables, ids, strict=True)))
    observed_values = [model.rvs_to_values[rv] for rv in roles["observed"]]
    digest.token("observed-values", ",".join(map(str, encoder.graph(observed_values))))
    digest.token("transforms")
    for rv in model.free_RVs:
        digest.token("transform", rv.name or "")
        encoder.value(model.rvs_to_transforms.get(rv))
    walk = StructureWalk(signature, digest.hexdigest(), tuple(live), tuple(encoder.shared_leaves))
    _walks[model] = walk
    return walk


def data_labels(shared: list[SharedVariable]) -> list[str]:
    """Readable, unique labels: the name, with ``#position`` where names repeat or are missing."""
    names = [var.name or "" for var in shared]
    return [
        name if name and names.count(name) == 1 else f"{name}#{position}"
        for position, name in enumerate(names)
    ]


def model_components(model: pm.Model) -> dict[str, Any]:
    """Digests of the model's parts: ``graph``, ``data`` (per shared variable), ``coords``,
    ``settings``.

    The structure walk is memoised per model; every array, shared value, Python callable,
    coord, dim and initval is read afresh on every call.
    """
    walk = walk_structure(model)
    shared = list(walk.shared_leaves)
    shared += [var for var in model.data_vars if not any(var is seen for seen in shared)]
    data = {
        label: content_digest(_value_of(var))
        for label, var in zip(data_labels(shared), shared, strict=True)
    }
    initvals = {rv.name: value for rv, value in model.rvs_to_initial_values.items()}
    dims = {name: tuple(dims) for name, dims in model.named_vars_to_dims.items()}
    coords = coord_digests(model)
    dim_lengths = {name: _value_of(length) for name, length in model.dim_lengths.items()}
    settings = {
        "pytensor": {flag: getattr(pytensor.config, flag) for flag in PYTENSOR_FLAGS},
        "name": model.name,
        "check_bounds": bool(model.check_bounds),
        "model_class": qualified_name(type(model)),
    }
    return {
        "graph": content_digest(
            {
                "structure": walk.digest,
                "content": live_digest(walk.live),
                "initvals": initvals,
                "dims": dims,
            }
        ),
        "data": dict(sorted(data.items())),
        "coords": content_digest({"coords": coords, "dim_lengths": dim_lengths}),
        "settings": content_digest(settings),
    }


def model_variable_digests(model: pm.Model) -> dict[str, str]:
    """Digest of each named variable's own definition (for explanations; not in the key)."""
    variables = [*model.free_RVs, *model.observed_RVs, *model.deterministics, *model.potentials]
    return variable_digests(distinct(variables))


_coord_memo: weakref.WeakKeyDictionary[pm.Model, dict[str, tuple[Any, str]]] = (
    weakref.WeakKeyDictionary()
)


def coord_digests(model: pm.Model) -> dict[str, str]:
    """Digest of each coordinate's values, reused while the model holds the same tuple.

    PyMC stores coordinate values as tuples (immutable), so the same tuple object has the same
    content; anything else is hashed afresh.
    """
    memo = _coord_memo.setdefault(model, {})
    digests = {}
    for name, values in model.coords.items():
        known = memo.get(name)
        if known is not None and known[0] is values:
            digests[name] = known[1]
            continue
        digests[name] = content_digest(_coord_values(values))
        if isinstance(values, tuple):
            memo[name] = (values, digests[name])
    return digests


def model_slug(model: pm.Model) -> str:
    """A short, filesystem-safe name for the model's folder in a disk cache."""
    return slugify(model.name or "model")


def slugify(text: str, max_length: int = 64) -> str:
    """Letters, digits, ``-``, ``_`` and ``.`` only; never empty, never ``.``/``..``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:max_length].strip("-.")
    return slug or "model"


def _value_of(var: Any) -> Any:
    if is_instance(var, SharedVariable):
        return var.get_value(borrow=True)
    if is_instance(var, Constant):
        return var.data
    return var.eval() if hasattr(var, "eval") else var


def _coord_values(values: Any) -> Any:
    """Coordinate values as one array, so ``[0, 1]``, ``(0, 1)`` and ``np.arange(2)`` agree."""
    return None if values is None else np.asarray(list(values))
