"""Fingerprint of a PyMC model: its graphs, data, coords and settings, as named components.

Only the generative graph is walked (free and observed random variables, deterministics,
potentials, observed values, transforms, initvals). The logp graph is a function of exactly
these and of the pymc/pytensor versions, which are in the key too; walking it would cost
~20 ms per call for nothing.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pytensor.graph.basic import Constant
from pytensor.tensor.sharedvar import SharedVariable

from cloudcache.fingerprint.canonical import GraphEncoder, content_digest
from cloudcache.fingerprint.digest import Digest


def model_components(model: pm.Model) -> dict[str, Any]:
    """Digests of the model's parts: ``graph``, ``data`` (per name), ``coords``, ``settings``."""
    digest = Digest()
    data_digests: dict[str, str] = {}
    encoder = GraphEncoder(digest, data_digests)

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

    transforms = {rv.name: model.rvs_to_transforms.get(rv) for rv in model.free_RVs}
    digest.token("transforms")
    encoder.value(transforms)

    initvals = {rv.name: value for rv, value in model.rvs_to_initial_values.items()}
    digest.token("initvals")
    encoder.value(initvals)

    digest.token("dims")
    encoder.value({name: tuple(dims) for name, dims in model.named_vars_to_dims.items()})

    for var in model.data_vars:
        if var.name:
            data_digests.setdefault(var.name, content_digest(_value_of(var)))

    coords = {name: _coord_values(values) for name, values in model.coords.items()}
    dim_lengths = {name: _value_of(length) for name, length in model.dim_lengths.items()}
    return {
        "graph": digest.hexdigest(),
        "data": dict(sorted(data_digests.items())),
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
