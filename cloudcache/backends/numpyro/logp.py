"""A PyMC model as JAX functions whose data are *arguments*, not baked-in constants.

:func:`model_graph` collects the model's log density and the variables stored in the posterior
as one PyTensor graph, with every ``pm.Data``/shared variable (and every large constant, such as
an observed NumPy array) replaced by a placeholder input. Its :attr:`ModelGraph.key` therefore
depends on the structure, shapes and dtypes only, and :meth:`ModelGraph.data_values` reads the
current values to pass at call time. :meth:`ModelGraph.jax_functions` turns it into JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from pymc.util import get_default_varnames
from pytensor.compile import SharedVariable, mode
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.replace import clone_replace
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.random.type import RandomType

from cloudcache.backends.kernel_cache import LIFT_CONSTANT_SIZE
from cloudcache.compat.pytensor import generated_source_in_process_folder
from cloudcache.errors import BackendRefused
from cloudcache.fingerprint.canonical import content_digest
from cloudcache.fingerprint.graph import GraphKey, graph_key

if TYPE_CHECKING:
    import pymc as pm


@dataclass(frozen=True)
class ModelGraph:
    """The log density and posterior outputs of a model, data lifted to inputs."""

    value_vars: tuple[Variable, ...]
    data_sources: tuple[Variable, ...]
    data_inputs: tuple[Variable, ...]
    logp: Variable
    outputs: tuple[Variable, ...]
    output_names: tuple[str, ...]
    key: GraphKey
    #: ``model.check_bounds``: whether a failed parameter check is a log density of -inf.
    check_bounds: bool = True

    def data_values(self) -> list[np.ndarray]:
        """Current values of the lifted data, in input order."""
        values = []
        for source in self.data_sources:
            if isinstance(source, SharedVariable):
                values.append(np.asarray(source.get_value(borrow=True)))
            else:
                values.append(np.asarray(source.data))
        return values

    def data_signature(self) -> tuple[tuple[tuple[int, ...], str], ...]:
        """Shapes and dtypes of the lifted data: part of the compiled-kernel key."""
        return tuple((np.shape(v), np.asarray(v).dtype.str) for v in self.data_values())

    @property
    def lifted(self) -> bool:
        """Whether any datum is a runtime argument (not a constant) of the program."""
        return bool(self.data_inputs)

    def jax_functions(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """``(logp_fn, outputs_fn)``: both take ``(values, data)`` tuples of arrays.

        Raises :class:`BackendRefused` when an op of the graph has no JAX conversion.
        """
        return self._functions

    @cached_property
    def _functions(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        try:
            inputs = self.value_vars + self.data_inputs
            logp_jax = _jaxify(inputs, [self.logp], self.check_bounds)
            outputs_jax = _jaxify(inputs, list(self.outputs), self.check_bounds)
        except NotImplementedError as exc:
            raise BackendRefused(str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc

        def logp_fn(values: Sequence[Any], data: Sequence[Any]) -> Any:
            return logp_jax(*values, *data)[0]

        def outputs_fn(values: Sequence[Any], data: Sequence[Any]) -> tuple[Any, ...]:
            return tuple(outputs_jax(*values, *data))

        return logp_fn, outputs_fn


def _jaxify(
    inputs: Sequence[Variable], outputs: Sequence[Variable], check_bounds: bool
) -> Callable[..., Any]:
    """Rewrite the graph for JAX and turn it into a Python function of JAX arrays."""
    from pytensor.link.jax.dispatch import jax_funcify

    from cloudcache.backends.numpyro.parameter_checks import checks_to_log_density
    from cloudcache.backends.numpyro.stable_ops import stabilise_reductions

    fgraph = FunctionGraph(inputs=list(inputs), outputs=list(outputs), clone=True)
    # Checks cannot raise inside traced JAX code: a failed parameter check is -inf, as in
    # PyMC's own sampler; other assertions are dropped, as PyMC's JAX path drops them.
    checks_to_log_density(fgraph, check_bounds)
    mode.JAX.optimizer.rewrite(fgraph)
    stabilise_reductions(fgraph)
    with generated_source_in_process_folder():  # not a file per function left in /tmp
        return jax_funcify(fgraph)


def _is_lifted(var: Variable) -> bool:
    if isinstance(var, SharedVariable):
        return True
    return (
        isinstance(var, Constant)
        and isinstance(var.data, np.ndarray)
        and var.data.ndim >= 1
        and var.data.size >= LIFT_CONSTANT_SIZE
    )


def model_graph(
    model: pm.Model,
    var_names: Sequence[str] | None = None,
    keep_untransformed: bool = False,
    *,
    lift: bool = True,
) -> ModelGraph:
    """Collect the model's log density and posterior outputs with data lifted to inputs.

    Only data that flow into arithmetic alone are lifted (:mod:`.data_flow`); data that fix a
    shape, an index set, a mask or a length, and every datum when ``lift`` is False, become
    constants holding their current values (and so part of :attr:`ModelGraph.key`).
    Raises :class:`BackendRefused` when JAX would differentiate the log density wrongly
    (:mod:`.gradient_hazards`).

    Kept per model while its fingerprint is unchanged (:mod:`.per_model`): a repeat miss (a new
    seed, more draws) reuses the graph; any edit, new data included, builds it again.
    """
    from cloudcache.backends.numpyro.per_model import kept_for_model

    names = None if var_names is None else tuple(var_names)
    return kept_for_model(
        model,
        ("graph", names, keep_untransformed, lift),
        lambda: _built_graph(model, var_names, keep_untransformed, lift=lift),
    )


def _built_graph(
    model: pm.Model, var_names: Sequence[str] | None, keep_untransformed: bool, *, lift: bool
) -> ModelGraph:
    """:func:`model_graph`, built."""
    from cloudcache.backends.numpyro.data_flow import arithmetic_only
    from cloudcache.backends.numpyro.gradient_hazards import gradient_hazard
    from cloudcache.backends.numpyro.splines import splines_as_arithmetic

    value_vars = tuple(model.value_vars)
    candidates = model.unobserved_value_vars
    if var_names is not None:
        unknown = set(var_names) - {v.name for v in candidates}
        if unknown:
            raise ValueError(f"var_names not in the model's posterior: {sorted(unknown)}")
        candidates = [v for v in candidates if v.name in var_names]
    outputs = list(get_default_varnames(candidates, include_transformed=keep_untransformed))
    # pm.Interpolated's SciPy spline as an interpolation JAX converts (:mod:`.splines`)
    logp, *outputs = splines_as_arithmetic([model.logp(), *outputs])
    hazard = gradient_hazard(value_vars, [logp])
    if hazard is not None:
        raise BackendRefused(hazard)

    sources: list[Variable] = []
    for var in graph_inputs([logp, *outputs]):
        if isinstance(var, SharedVariable) and isinstance(var.type, RandomType):
            raise BackendRefused(f"the model's log density uses a random generator ({var})")
        if _is_lifted(var) and var not in sources:
            sources.append(var)
    placeholders = [_placeholder(src) for src in sources]
    replaced = clone_replace(
        [logp, *outputs], replace=dict(zip(sources, placeholders, strict=True))
    )
    if lift:
        verdicts = arithmetic_only([*value_vars, *placeholders], replaced, placeholders)
    else:
        verdicts = [False] * len(sources)
    lifted = [src for src, ok in zip(sources, verdicts, strict=True) if ok]
    inputs = [p for p, ok in zip(placeholders, verdicts, strict=True) if ok]
    fixed = {
        p: _constant_of(src)
        for src, p, ok in zip(sources, placeholders, verdicts, strict=True)
        if not ok
    }
    if fixed:
        replaced = clone_replace(replaced, replace=fixed)
    logp_new, outputs_new = replaced[0], tuple(replaced[1:])
    key = graph_key([*value_vars, *inputs], [logp_new, *outputs_new])
    check_bounds = bool(model.check_bounds)
    if not check_bounds:  # the same graph, compiled without its parameter checks
        key = GraphKey(content_digest([key.digest, "unchecked"]), key.pinned)
    return ModelGraph(
        value_vars=value_vars,
        data_sources=tuple(lifted),
        data_inputs=tuple(inputs),
        logp=logp_new,
        outputs=outputs_new,
        output_names=tuple(v.name for v in outputs),
        key=key,
        check_bounds=check_bounds,
    )


def _placeholder(source: Variable) -> Variable:
    placeholder = source.type()
    placeholder.name = f"data:{source.name}" if source.name else "data"
    return placeholder


def _constant_of(source: Variable) -> Variable:
    """A constant with ``source``'s current value and exactly its type."""
    if isinstance(source, Constant):
        return source
    value = np.asarray(source.get_value(borrow=True), dtype=source.type.dtype)
    return source.type.make_constant(value, name=source.name)
