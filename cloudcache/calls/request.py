"""Normalisation of ``pm.sample`` arguments into one canonical :class:`SampleRequest`.

Positional and keyword arguments are bound against the real signature of ``pymc.sample`` and
defaults are resolved exactly as PyMC resolves them (``tune``, ``cores`` -> ``chains``), so
``pm.sample()`` and ``pm.sample(draws=1000)`` become the same request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xxhash

from cloudcache.backends.request import SampleRequest
from cloudcache.compat.pymc import SAMPLE_RENAMED_ARGUMENTS, default_cores, forward_seed

#: Arguments whose non-default values make a call impossible to key safely.
UNKEYABLE_ARGUMENTS: dict[str, str] = {
    "step": "a custom `step=` object carries sampler state the cache cannot fingerprint",
    "callback": "`callback=` runs arbitrary code on every draw",
    "trace": "a custom `trace=` backend writes the draws somewhere the cache cannot see",
}


def _seed_key(random_seed: Any, chains: int) -> Any:
    """Key form of ``random_seed``: the state of each per-chain generator PyMC derives.

    ``pm.sample`` spawns ``chains`` generators from ``get_random_generator(random_seed)`` and
    hands them to the step methods (the initial jitter is drawn from them too), so spellings
    that spawn the same generators (``1``, ``np.int64(1)``, ``np.random.default_rng(1)``) give
    the same draws and the same key. ``None`` stays "unseeded".
    """
    if random_seed is None:
        return None
    if isinstance(random_seed, bool | np.bool_):
        raise TypeError(
            "random_seed must be an int, a sequence of ints, a numpy Generator or None, not bool"
        )
    if isinstance(random_seed, int | np.integer) and random_seed < 0:
        raise TypeError("random_seed must be a non-negative int")  # PyMC says why in its words
    if not isinstance(
        random_seed, int | np.integer | list | tuple | np.ndarray | np.random.Generator
    ) and not isinstance(random_seed, np.random.BitGenerator | np.random.SeedSequence):
        raise TypeError(
            "random_seed must be an int, a sequence of ints, a numpy Generator or None, "
            f"got {type(random_seed).__name__}"
        )
    from pymc.util import get_random_generator

    try:
        spawned = get_random_generator(random_seed, copy=True).spawn(chains)
    except ValueError as error:
        raise TypeError(f"random_seed cannot seed PyMC's generators: {error}") from error
    return ("chain-generators", tuple(generator_state(rng) for rng in spawned))


def forward_seed_key(random_seed: Any) -> Any:
    """Key form of ``random_seed`` for forward sampling (prior/posterior predictive).

    PyMC turns it into one integer (``_get_seeds_per_chain(random_seed, 1)``, which draws from a
    generator's *current* state) and reseeds every random variable from that integer, so the
    integer is exactly what matters. It is derived from a copy: the caller's generator is not
    advanced. ``None`` stays "unseeded".
    """
    if random_seed is None:
        return None
    if isinstance(random_seed, bool | np.bool_):
        raise TypeError("random_seed must be an int, a sequence of ints, a Generator or None")
    try:
        seed = forward_seed(random_seed)
    except (ValueError, TypeError) as error:
        raise TypeError(f"random_seed cannot seed PyMC's forward sampler: {error}") from error
    if seed < 0:
        raise TypeError("random_seed must be a non-negative int")  # PyMC says why in its words
    return ("forward-seed", seed)


def generator_state(rng: np.random.Generator) -> str:
    """Digest of one generator's full bit-generator state (process-stable)."""
    state = rng.bit_generator.state
    return xxhash.xxh3_128_hexdigest(repr(sorted(_flatten(state))).encode())


def _flatten(state: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(state, dict):
        return [pair for key, item in state.items() for pair in _flatten(item, f"{prefix}.{key}")]
    if isinstance(state, np.ndarray):
        return [(prefix, f"{state.dtype.str}:{state.tobytes().hex()}")]
    return [(prefix, repr(state))]


def _requested_sampler(
    signature: inspect.Signature, arguments: dict[str, Any], passed: set[str]
) -> str | None:
    """The ``nuts_sampler`` the caller asked for: ``None`` when it was not passed.

    PyMC 5 spells its default ``"pymc"``, PyMC 6 ``None``; either way an argument the caller
    left out is no request, so the backend (``cloud(backend=...)``) decides. An explicit
    ``None`` where PyMC's default is not ``None`` (PyMC 5) is rejected as PyMC rejects it.
    """
    if "nuts_sampler" not in passed:
        return None
    requested = arguments.get("nuts_sampler")
    default = signature.parameters["nuts_sampler"].default
    if requested is None and default is not None:
        raise TypeError(f"nuts_sampler=None is not valid for this PyMC (its default: {default!r})")
    return requested


def _resolve_renamed(arguments: dict[str, Any], extra: dict[str, Any]) -> None:
    """Move the keyword arguments this PyMC still accepts under an old name to the new one."""
    for old, new in SAMPLE_RENAMED_ARGUMENTS.items():
        if old not in extra:
            continue
        if arguments.get(new) is not None:
            raise TypeError(f"pass either `{old}=` or `{new}=`, not both")  # PyMC says why
        arguments[new] = extra.pop(old)


def sample_idata_kwargs(value: Any) -> Any:
    """``idata_kwargs`` as ``pm.sample`` reads it: ``None`` for no options.

    ``None`` and ``{}`` are read alike, and ``log_likelihood=False`` is the default (PyMC 6
    only adds a deprecation warning for passing it), so it is dropped: every backend then
    sees one spelling.
    """
    if not isinstance(value, Mapping):
        return value
    options = {
        name: option
        for name, option in value.items()
        if not (name == "log_likelihood" and option is False)
    }
    return options or None


def normalize_sample_call(
    sample_fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> SampleRequest:
    """Bind ``args``/``kwargs`` against ``sample_fn`` and resolve PyMC's defaults."""
    signature = inspect.signature(sample_fn)
    bound = signature.bind(*args, **kwargs)
    passed = set(bound.arguments)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    extra = dict(arguments.pop("kwargs", {}) or {})
    _resolve_renamed(arguments, extra)
    arguments["idata_kwargs"] = sample_idata_kwargs(arguments.get("idata_kwargs"))
    if isinstance(arguments.get("initvals"), dict) and not arguments["initvals"]:  # none at all
        arguments["initvals"] = None
    arguments["nuts_sampler"] = _requested_sampler(signature, arguments, passed)

    draws = int(arguments["draws"])
    tune = 1000 if arguments.get("tune") is None else int(arguments["tune"])
    cores = arguments.get("cores")
    cores = min(4, default_cores()) if cores is None else int(cores)
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
        seed_key=_seed_key(arguments.get("random_seed"), chains),
        arguments=arguments,
        extra_kwargs=extra,
        uncacheable_reason=reason,
    )
