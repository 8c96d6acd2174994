"""Translate a :class:`SampleRequest` into what the JAX NUTS runner does, or say why it cannot.

Every ``pm.sample`` argument is accounted for here: honoured by the runner, cosmetic (it cannot
change the draws), or a reason to hand the call to PyMC's own sampler. Nothing is dropped
silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudcache.backends.base import Backend, refuse_pymc_only_arguments
from cloudcache.backends.numpyro.fork_guard import refuse_in_fork_child
from cloudcache.backends.numpyro.support import unconvertible_reason
from cloudcache.backends.request import SampleRequest
from cloudcache.errors import BackendRefused

if TYPE_CHECKING:
    import pymc as pm

#: Libraries whose versions enter the key of a NumPyro run.
LIBRARIES: tuple[str, ...] = ("pymc", "pytensor", "jax", "jaxlib", "numpyro")

#: Revision of the runner's program (2: init + one step program per chunk + outputs; 3: a
#: distribution's parameter checks give a log density of -inf, as in PyMC's own sampler, instead
#: of being dropped; 4: no progress callback inside the step program). It enters the key:
#: entries of an older revision are not served.
RUNNER_REVISION = 4

#: NumPyro NUTS kernel options passed through as given (all hashable scalars).
KERNEL_OPTIONS: frozenset[str] = frozenset(
    {
        "step_size",
        "adapt_step_size",
        "adapt_mass_matrix",
        "dense_mass",
        "regularize_mass_matrix",
        "find_heuristic_step_size",
        "forward_mode_differentiation",
    }
)

#: Options of PyMC's own NUTS step that NumPyro has no equivalent for.
PYMC_ONLY_OPTIONS: frozenset[str] = frozenset(
    {
        "step_scale",
        "early_max_treedepth",
        "gamma",
        "k",
        "t0",
        "Emax",
        "scaling",
        "is_cov",
        "potential",
        "integrator",
        "adapt_step_size_tune",
    }
)

#: Options of PyMC's JAX path that only choose how post-processing runs; results are identical
#: because the runner post-processes inside its compiled function.
POSTPROCESSING_OPTIONS: frozenset[str] = frozenset(
    {"postprocessing_backend", "postprocessing_vectorize", "postprocessing_chunks"}
)

#: ``init=`` values the runner honours: (jitter the start, dense mass matrix).
INIT_METHODS: dict[str, tuple[bool, bool]] = {
    "auto": (True, False),
    "jitter+adapt_diag": (True, False),
    "adapt_diag": (False, False),
    "jitter+adapt_full": (True, True),
    "adapt_full": (False, True),
}


@dataclass(frozen=True)
class RunPlan:
    """What the runner does for one request."""

    draws: int
    tune: int
    chains: int
    kernel_options: tuple[tuple[str, Any], ...]
    max_tree_depth: int
    jitter: bool
    jitter_max_retries: int
    keep_untransformed: bool
    chain_method: str | None
    var_names: tuple[str, ...] | None
    initvals: Any
    idata_kwargs: dict[str, Any]
    compute_convergence_checks: bool
    quiet: bool
    progressbar: bool

    def kernel_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``numpyro.infer.NUTS`` (besides ``potential_fn``)."""
        return {**dict(self.kernel_options), "max_tree_depth": self.max_tree_depth}


def _split_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - KERNEL_OPTIONS - PYMC_ONLY_OPTIONS - POSTPROCESSING_OPTIONS
    unknown -= {"target_accept", "max_treedepth", "jitter"}
    unknown -= {"keep_untransformed", "chain_method"}
    if unknown:
        raise TypeError(
            f"unknown NUTS option(s) for the numpyro backend: {', '.join(sorted(unknown))}"
        )
    pymc_only = sorted(set(options) & PYMC_ONLY_OPTIONS)
    if pymc_only:
        raise BackendRefused(
            f"NUTS option(s) {', '.join(pymc_only)} exist only in PyMC's own sampler"
        )
    return dict(options)


def plan_request(request: SampleRequest) -> RunPlan:
    """Build the runner's plan; raise :class:`BackendRefused` or ``TypeError``/``ValueError``."""
    refuse_in_fork_child()
    args = request.arguments
    refuse_pymc_only_arguments(args, "numpyro")
    if not args.get("discard_tuned_samples", True):
        raise BackendRefused(
            "`discard_tuned_samples=False` (warm-up draws) needs PyMC's own sampler"
        )
    if args.get("keep_warning_stat"):
        raise BackendRefused("`keep_warning_stat=True` is a stat of PyMC's own sampler")
    init = args.get("init", "auto")
    if init not in INIT_METHODS:
        raise BackendRefused(f"`init={init!r}` is an initialisation of PyMC's own sampler")
    init_jitter, init_dense = INIT_METHODS[init]

    options = _split_options(request.nuts_options)
    if "max_tree_depth" in options:
        raise TypeError("spell NumPyro's max_tree_depth as PyMC's `max_treedepth`")
    max_tree_depth = int(options.get("max_treedepth", 10))
    target_accept = float(options.get("target_accept", 0.8))
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    kernel = {k: options[k] for k in KERNEL_OPTIONS if k in options}
    if init_dense:
        if kernel.get("dense_mass") is False:
            raise ValueError(f"init={init!r} asks for a dense mass matrix but dense_mass=False")
        kernel["dense_mass"] = True
    for name, value in kernel.items():
        if not isinstance(value, bool | int | float):
            raise TypeError(f"NUTS option {name} must be a bool or number, got {value!r}")
    kernel["target_accept_prob"] = target_accept
    chain_method = options.get("chain_method")
    if chain_method not in (None, "parallel", "vectorized"):
        raise ValueError(f"chain_method must be 'parallel' or 'vectorized', got {chain_method!r}")

    idata_kwargs = dict(args.get("idata_kwargs") or {})
    keep_untransformed = bool(options.get("keep_untransformed", False))
    keep_untransformed = bool(idata_kwargs.pop("include_transformed", keep_untransformed))
    var_names = args.get("var_names")
    if request.draws < 1:
        raise ValueError("draws must be at least 1 for the numpyro backend")
    if request.tune < 0:
        raise ValueError("tune must be >= 0")
    return RunPlan(
        draws=request.draws,
        tune=request.tune,
        chains=request.chains,
        kernel_options=tuple(sorted(kernel.items())),
        max_tree_depth=max_tree_depth,
        jitter=bool(options.get("jitter", init_jitter)),
        jitter_max_retries=int(args.get("jitter_max_retries", 10)),
        keep_untransformed=keep_untransformed,
        chain_method=chain_method,
        var_names=None if var_names is None else tuple(var_names),
        initvals=args.get("initvals"),
        idata_kwargs=idata_kwargs,
        compute_convergence_checks=bool(args.get("compute_convergence_checks", True)),
        quiet=bool(args.get("quiet", False)),
        progressbar=bool(args.get("progressbar", True)) and not args.get("quiet", False),
    )


class NumpyroPlanner(Backend):
    """The numpyro backend as far as it is known without JAX: its name, the libraries in its key,
    its plan and so its refusal (PyMC-only arguments, discrete free variables, ops known to have
    no JAX conversion, :mod:`~cloudcache.backends.numpyro.support`). Asked on every call, hits
    included; :class:`~cloudcache.backends.numpyro.backend.NumpyroBackend` adds the sampling."""

    name = "numpyro"
    libraries = LIBRARIES
    samples_discrete = False
    extendable = True

    def library_versions(self) -> dict[str, str]:
        """The libraries' versions and the runner's revision: a new program structure samples
        other (equally valid) draws, so it must not be served entries of the old one."""
        return {**super().library_versions(), "cloudcache-numpyro-runner": f"{RUNNER_REVISION}.0"}

    def plan(self, request: SampleRequest) -> RunPlan:
        return plan_request(request)

    def model_refusal(self, model: pm.Model) -> str | None:
        return unconvertible_reason(model)
