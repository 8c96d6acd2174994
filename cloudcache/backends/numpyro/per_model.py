"""What a NumPyro miss builds from a model and keeps for the next miss of the same model.

A repeat miss in one process (a new seed, more draws) needs the model's log density graph and
PyMC's initial-point functions again; building them costs 40-65 ms each on small models. They
are kept per model object (weakly: a model that is gone takes them with it) under the model's
fingerprint, the key's model components (its structure, every array and Python value it holds,
its initvals, coords and settings), which is re-hashed on every call (0.2-0.6 ms): any edit of
the model, new data included, builds them again, as a cache hit trusts the key.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from cloudcache.fingerprint.canonical import content_digest
from cloudcache.fingerprint.model import model_components

if TYPE_CHECKING:
    import pymc as pm

T = TypeVar("T")

#: How many built things are kept per model (graphs with and without lifted data, initial-point
#: functions...), the oldest dropped first.
KEPT_PER_MODEL = 8

_kept: weakref.WeakKeyDictionary[pm.Model, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def model_fingerprint(model: pm.Model) -> str:
    """The digest of the key's model components, computed afresh."""
    return content_digest(model_components(model))


def kept_for_model(model: pm.Model, what: Hashable, build: Callable[[], T]) -> T:
    """``build()``, or what it built for ``model`` before with the same ``what`` while the
    model's fingerprint was the same."""
    key = (model_fingerprint(model), what)
    kept = _kept.get(model)
    if kept is not None and key in kept:
        return kept[key]
    built = build()
    kept = _kept.setdefault(model, {})
    kept[key] = built
    while len(kept) > KEPT_PER_MODEL:
        del kept[next(iter(kept))]
    return built
