"""Translate a :class:`SampleRequest` into a nutpie run, or say in one line why it cannot.

Every ``pm.sample`` argument is accounted for: honoured (``draws``, ``tune``, ``chains``,
``cores``, ``random_seed``, ``target_accept``, ``max_treedepth``, ``initvals`` as one dict,
``var_names``, ``discard_tuned_samples``, ``idata_kwargs={"include_transformed": ...}``,
``progressbar``), cosmetic (it cannot change the draws), or a reason to hand the call to PyMC's
own sampler. Cosmetic: ``progressbar_theme``, ``quiet``, ``blas_cores``, ``mp_ctx``,
``compile_kwargs`` (nutpie always compiles with numba), ``compute_convergence_checks`` (PyMC's
nutpie path runs none either) and ``n_init`` (read only by the refused ADVI initialisations).
Nothing is dropped silently. Never imports nutpie or numba.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from cloudcache.backends.base import Backend, refuse_pymc_only_arguments
from cloudcache.backends.request import SampleRequest
from cloudcache.errors import BackendRefused

if TYPE_CHECKING:
    pass

#: The libraries whose versions enter the key of a nutpie-sampled entry.
LIBRARIES: tuple[str, ...] = ("pymc", "pytensor", "nutpie", "numba")

#: NUTS options nutpie honours (PyMC's spelling).
NUTPIE_OPTIONS: frozenset[str] = frozenset({"target_accept", "max_treedepth"})

#: ``idata_kwargs`` nutpie honours.
IDATA_OPTIONS: frozenset[str] = frozenset({"include_transformed"})

#: PyMC's default ``jitter_max_retries``; nutpie has no retry loop.
DEFAULT_JITTER_RETRIES = 10


@dataclass(frozen=True)
class NutpiePlan:
    """What one nutpie run does."""

    draws: int
    tune: int
    chains: int
    cores: int
    target_accept: float
    maxdepth: int
    initvals: Mapping[str, Any] | None
    var_names: tuple[str, ...] | None
    include_transformed: bool
    save_warmup: bool
    progressbar: Any
    progressbar_theme: Any


def missing_library() -> str | None:
    """Why nutpie cannot run here (not installed), without importing it."""
    for package in ("nutpie", "numba"):
        if find_spec(package) is None:
            return f"{package} is not installed (pip install 'cloudcache[nutpie]')"
    return None


def _checked_options(request: SampleRequest) -> tuple[float, int]:
    options = request.nuts_options
    other = sorted(set(options) - NUTPIE_OPTIONS)
    if other:
        raise BackendRefused(f"NUTS option(s) {', '.join(other)} are not nutpie settings")
    target_accept = float(options["target_accept"])
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    maxdepth = int(options["max_treedepth"])
    if maxdepth < 1:
        raise ValueError(f"max_treedepth must be >= 1, got {maxdepth}")
    return target_accept, maxdepth


def plan_nutpie(request: SampleRequest) -> NutpiePlan:
    """Build the nutpie plan; raise :class:`BackendRefused` (one-line reason) or ``ValueError``."""
    args = request.arguments
    missing = missing_library()
    if missing:
        raise BackendRefused(missing)
    refuse_pymc_only_arguments(args, "nutpie")
    if args.get("init", "auto") != "auto":
        raise BackendRefused(f"`init={args['init']!r}` is an initialisation of PyMC's own sampler")
    if args.get("jitter_max_retries", DEFAULT_JITTER_RETRIES) != DEFAULT_JITTER_RETRIES:
        raise BackendRefused("`jitter_max_retries=` is a setting of PyMC's own initialisation")
    if args.get("keep_warning_stat"):
        raise BackendRefused("`keep_warning_stat=True` is a stat of PyMC's own sampler")
    initvals = args.get("initvals")
    if initvals is not None and not isinstance(initvals, Mapping):
        raise BackendRefused("nutpie takes one `initvals` dict, not one per chain")
    if initvals is not None:  # by name: the compiled model is built from a copy of the model
        initvals = {getattr(var, "name", var): value for var, value in initvals.items()}
    idata_kwargs = dict(args.get("idata_kwargs") or {})
    other = sorted(set(idata_kwargs) - IDATA_OPTIONS)
    if other:
        raise BackendRefused(f"idata_kwargs {', '.join(other)} are not honoured by nutpie")
    target_accept, maxdepth = _checked_options(request)
    if request.draws < 1:
        raise ValueError("draws must be at least 1 for the nutpie backend")
    if request.tune < 0:
        raise ValueError("tune must be >= 0")
    var_names = args.get("var_names")
    cores = args.get("cores")
    return NutpiePlan(
        draws=request.draws,
        tune=max(request.tune, 1),  # nuts-rs needs one tuning step (PyMC does the same)
        chains=request.chains,
        cores=min(4, os.cpu_count() or 1) if cores is None else int(cores),  # as pm.sample
        target_accept=target_accept,
        maxdepth=maxdepth,
        initvals=initvals,
        var_names=None if var_names is None else tuple(var_names),
        include_transformed=bool(idata_kwargs.get("include_transformed", False)),
        save_warmup=not args.get("discard_tuned_samples", True),
        progressbar=False if args.get("quiet") else args.get("progressbar", True),
        progressbar_theme=args.get("progressbar_theme"),
    )


class NutpiePlanner(Backend):
    """The nutpie backend as far as it is known without nutpie or numba: its name, the libraries
    in its key, its plan and so its refusal (settings it cannot honour, nutpie not installed,
    discrete free variables). Asked on every call, hits included;
    :class:`~cloudcache.backends.nutpie.backend.NutpieBackend` adds the sampling."""

    name = "nutpie"
    libraries = LIBRARIES
    samples_discrete = False

    def plan(self, request: SampleRequest) -> NutpiePlan:
        return plan_nutpie(request)
