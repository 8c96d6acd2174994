"""Fingerprint of a PyMC model: its graphs, data, coords and settings, as named components.

Only the generative graph is walked (free and observed random variables, deterministics,
potentials, observed values, transforms, initvals). The logp graph is a function of exactly
these and of the pymc/pytensor versions, which are in the key too; walking it would cost
~20 ms per call for nothing.
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

from cloudcache.fingerprint.canonical import GraphEncoder, content_digest
from cloudcache.fingerprint.digest import Digest


@dataclass(frozen=True)
class _GraphWalk:
    """The reusable part of a model's fingerprint: valid while the model's variables are."""

    signature: tuple[int, ...]
    digest: str
    shared_leaves: dict[str, SharedVariable]


_walks: weakref.WeakKeyDictionary[pm.Model, _GraphWalk] = weakref.WeakKeyDictionary()


def _signature(model: pm.Model) -> tuple[int, ...]:
    """Identities of the model's variables: any added or replaced variable changes it.

    ``id()`` is used only to detect change within this process, never as key content.
    """
    variables = [*model.free_RVs, *model.observed_RVs, *model.deterministics, *model.potentials]
    observed = [model.rvs_to_values[rv] for rv in model.observed_RVs]
    transforms = [model.rvs_to_transforms.get(rv) for rv in model.free_RVs]
    return tuple(map(id, [*variables, *observed, *transforms]))


def _walk_graph(model: pm.Model) -> _GraphWalk:
    signature = _signature(model)
    cached = _walks.get(model)
    if cached is not None and cached.signature == signature:
        return cached
    digest = Digest()
    encoder = GraphEncoder(digest)
    roles = {
        "free": model.free_RVs,
        "observed": model.observed_RVs,
        "deterministic": model.deterministics,
        "potential": model.potentials,
    }
    for role, variables in roles.items():
        ids = encoder.graph(variables)
        digest.token(role, ",".join(f"{v.name}={i}" for v, i in zip(variables, ids, strict=True)))
    observed_values = [model.rvs_to_values[rv] for rv in model.observed_RVs]
    digest.token("observed-values", ",".join(map(str, encoder.graph(observed_values))))
    digest.token("transforms")
    encoder.value({rv.name: model.rvs_to_transforms.get(rv) for rv in model.free_RVs})
    walk = _GraphWalk(signature, digest.hexdigest(), dict(encoder.shared_leaves))
    _walks[model] = walk
    return walk


def model_components(model: pm.Model) -> dict[str, Any]:
    """Digests of the model's parts: ``graph``, ``data`` (per name), ``coords``, ``settings``.

    The graph walk is memoised per model (invalidated when its variables change); data values,
    coords, dims and initvals are read afresh on every call.
    """
    walk = _walk_graph(model)
    data = {
        label: content_digest(var.get_value(borrow=True))
        for label, var in walk.shared_leaves.items()
    }
    for var in model.data_vars:
        if var.name and var.name not in data:
            data[var.name] = content_digest(_value_of(var))
    initvals = {rv.name: value for rv, value in model.rvs_to_initial_values.items()}
    dims = {name: tuple(dims) for name, dims in model.named_vars_to_dims.items()}
    coords = {name: _coord_values(values) for name, values in model.coords.items()}
    dim_lengths = {name: _value_of(length) for name, length in model.dim_lengths.items()}
    return {
        "graph": content_digest({"walk": walk.digest, "initvals": initvals, "dims": dims}),
        "data": dict(sorted(data.items())),
        "coords": content_digest({"coords": coords, "dim_lengths": dim_lengths}),
        "settings": content_digest({"floatX": pytensor.config.floatX, "name": model.name}),
    }


def model_slug(model: pm.Model) -> str:
    """A short, filesystem-safe name for the model's folder in a disk cache."""
    return slugify(model.name or "model")


def slugify(text: str, max_length: int = 64) -> str:
    """Letters, digits, ``-``, ``_`` and ``.`` only; never empty, never ``.``/``..``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:max_length].strip("-.")
    return slug or "model"


def _value_of(var: Any) -> Any:
    if isinstance(var, SharedVariable):
        return var.get_value(borrow=True)
    if isinstance(var, Constant):
        return var.data
    return var.eval() if hasattr(var, "eval") else var


def _coord_values(values: Any) -> Any:
    """Coordinate values as one array, so ``[0, 1]``, ``(0, 1)`` and ``np.arange(2)`` agree."""
    return None if values is None else np.asarray(list(values))
