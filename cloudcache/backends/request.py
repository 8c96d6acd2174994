"""What a backend is asked to sample: one ``pm.sample`` call after binding, as a value.

:class:`SampleRequest` is made by :func:`cloudcache.calls.request.normalize_sample_call` and read
by the backends (their plans), the executors (a worker gets it pickled) and the cache path (its
key form, :meth:`SampleRequest.key_arguments`, enters the key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Arguments that cannot change the posterior: they are left out of the key.
COSMETIC_ARGUMENTS: frozenset[str] = frozenset(
    {
        "progressbar",
        "progressbar_theme",
        "quiet",
        "cores",
        "blas_cores",
        "mp_ctx",
        "compile_kwargs",
        "backend",
        "compute_convergence_checks",
        "model",
    }
)

#: Arguments the key holds in another form: the backend id names the sampler that runs, and
#: the merged NUTS options hold ``nuts_sampler_kwargs``.
BACKEND_ARGUMENTS: frozenset[str] = frozenset({"nuts_sampler", "nuts_sampler_kwargs"})

#: NUTS options whose defaults are spelled into the key, so writing them out still hits.
NUTS_DEFAULTS: dict[str, Any] = {"target_accept": 0.8, "max_treedepth": 10}


@dataclass(frozen=True)
class SampleRequest:
    """One ``pm.sample`` call after binding and default resolution.

    ``arguments`` holds every argument of ``pm.sample`` by name (extra ``**kwargs`` such as
    ``target_accept`` flattened in), ready to be passed back to PyMC. ``seed_key`` is the form of
    ``random_seed`` that enters the cache key.
    """

    draws: int
    tune: int
    chains: int
    random_seed: Any
    seed_key: Any
    arguments: dict[str, Any] = field(repr=False)
    extra_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
    uncacheable_reason: str | None = None

    @property
    def label(self) -> str:
        """Readable label used in file names: ``draws500_tune500_chains2``."""
        return f"draws{self.draws}_tune{self.tune}_chains{self.chains}"

    @property
    def nuts_options(self) -> dict[str, Any]:
        """Merged NUTS options (``**kwargs``, ``nuts=``, ``nuts_sampler_kwargs``) with defaults."""
        options = dict(self.arguments.get("nuts_sampler_kwargs") or {})
        nested = self.extra_kwargs.get("nuts")
        if isinstance(nested, Mapping):
            options.update(nested)
        options.update({k: v for k, v in self.extra_kwargs.items() if k != "nuts"})
        return {**NUTS_DEFAULTS, **options}

    def key_arguments(self) -> dict[str, Any]:
        """The arguments that enter the key, normalised so equivalent spellings agree.

        Cosmetic arguments are removed, the seed is in its key form, numpy scalars become Python
        numbers, ``nuts_sampler`` is left to the backend id (the key holds the backend that
        really samples), ``n_init`` is dropped when ``init`` runs no ADVI (PyMC ignores it) and
        ``var_names`` is sorted (which variables are kept, not their order, changes the result).
        """
        parts = {
            name: value
            for name, value in self.arguments.items()
            if name not in COSMETIC_ARGUMENTS and name not in BACKEND_ARGUMENTS
        }
        if not _uses_advi(parts.get("init")):
            parts.pop("n_init", None)
        if type(parts.get("var_names")) in (list, tuple):  # the order changes no draw
            parts["var_names"] = sorted(map(str, parts["var_names"]))
        parts["random_seed"] = self.seed_key
        parts["nuts"] = dict(sorted(self.nuts_options.items()))
        return python_scalars(parts)

    def pymc_arguments(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments to hand the call back to ``pymc.sample``."""
        merged = dict(self.arguments)
        if merged.get("nuts_sampler") is None:  # not asked for: PyMC's default, as the caller did
            merged.pop("nuts_sampler", None)
        merged.update(self.extra_kwargs)
        merged.update(overrides)
        return merged


@dataclass(frozen=True)
class DrawsLeftOut:
    """A request's *run key* form: its key arguments without ``draws``.

    Runs that differ only in ``draws`` share it, so a stored shorter run can be found and
    extended; every other argument (the seed, ``tune``, ``chains``, NUTS options...) stays in.
    """

    request: SampleRequest

    def key_arguments(self) -> dict[str, Any]:
        arguments = self.request.key_arguments()
        del arguments["draws"]
        arguments["run key"] = "draws left out"  # never equal to a request's own key form
        return arguments


def _uses_advi(init: Any) -> bool:
    """Whether PyMC's ``init`` method runs ADVI (the only ones that read ``n_init``)."""
    return not isinstance(init, str) or "advi" in init


def python_scalars(value: Any) -> Any:
    """``value`` with numpy scalars turned into the Python numbers they equal, recursively."""
    if isinstance(value, np.generic) and not isinstance(value, np.str_ | np.bytes_):
        return value.item()
    if isinstance(value, dict):
        return {key: python_scalars(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(python_scalars(item) for item in value)
    return value
