"""Normalisation of ``pm.sample`` arguments into one canonical :class:`SampleRequest`.

Positional and keyword arguments are bound against the real signature of ``pymc.sample`` and
defaults are resolved exactly as PyMC resolves them (``tune``, ``cores`` -> ``chains``), so
``pm.sample()`` and ``pm.sample(draws=1000)`` become the same request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
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

#: Arguments whose non-default values make a call impossible to key safely.
UNKEYABLE_ARGUMENTS: dict[str, str] = {
    "step": "a custom `step=` object carries sampler state the cache cannot fingerprint",
    "callback": "`callback=` runs arbitrary code on every draw",
    "trace": "a custom `trace=` backend writes the draws somewhere the cache cannot see",
}


#: NUTS options whose defaults are spelled into the key, so writing them out still hits.
NUTS_DEFAULTS: dict[str, Any] = {"target_accept": 0.8, "max_treedepth": 10}


class UncacheableCall(Exception):
    """The call is valid for PyMC but cannot be keyed safely; it runs uncached."""


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
        """The arguments that enter the key (cosmetic ones removed, seed in its key form)."""
        parts = {
            name: value
            for name, value in self.arguments.items()
            if name not in COSMETIC_ARGUMENTS and name != "nuts_sampler_kwargs"
        }
        parts["random_seed"] = self.seed_key
        parts["nuts"] = dict(sorted(self.nuts_options.items()))
        return parts

    def pymc_arguments(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments to hand the call back to ``pymc.sample``."""
        merged = dict(self.arguments)
        merged.update(self.extra_kwargs)
        merged.update(overrides)
        return merged


def _cpu_count() -> int:
    from pymc.sampling.mcmc import _cpu_count as pymc_cpu_count

    return pymc_cpu_count()


def seed_key(random_seed: Any, chains: int) -> Any:
    """Key form of ``random_seed``; generators become the per-chain seeds PyMC would derive."""
    if random_seed is None:
        return None
    if isinstance(random_seed, bool):
        raise TypeError(
            "random_seed must be an int, a sequence of ints, a numpy Generator or None, not bool"
        )
    if isinstance(random_seed, int | np.integer):
        return int(random_seed)
    if isinstance(
        random_seed, np.random.Generator | np.random.RandomState | np.random.BitGenerator
    ):
        from pymc.util import get_random_generator

        spawned = get_random_generator(random_seed, copy=True).spawn(chains)
        return ("generator", tuple(int(rng.integers(2**30)) for rng in spawned))
    if isinstance(random_seed, list | tuple | np.ndarray):
        return tuple(int(s) for s in np.asarray(random_seed).ravel().tolist())
    raise TypeError(
        "random_seed must be an int, a sequence of ints, a numpy Generator or None, "
        f"got {type(random_seed).__name__}"
    )


def normalize_sample_call(
    sample_fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> SampleRequest:
    """Bind ``args``/``kwargs`` against ``sample_fn`` and resolve PyMC's defaults."""
    signature = inspect.signature(sample_fn)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    extra = dict(arguments.pop("kwargs", {}) or {})

    draws = int(arguments["draws"])
    tune = 1000 if arguments.get("tune") is None else int(arguments["tune"])
    cores = arguments.get("cores")
    cores = min(4, _cpu_count()) if cores is None else int(cores)
    chains = max(2, cores) if arguments.get("chains") is None else int(arguments["chains"])
    arguments.update(draws=draws, tune=tune, chains=chains)

    reason = None
    for name, why in UNKEYABLE_ARGUMENTS.items():
        if arguments.get(name) is not None:
            reason = why
    if arguments.get("return_inferencedata") is False:
        reason = "`return_inferencedata=False` returns a MultiTrace, which the cache does not store"

    return SampleRequest(
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=arguments.get("random_seed"),
        seed_key=seed_key(arguments.get("random_seed"), chains),
        arguments=arguments,
        extra_kwargs=extra,
        uncacheable_reason=reason,
    )
