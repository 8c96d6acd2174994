"""A distribution's parameter checks in traced JAX code: a log density of -inf, never dropped.

PyMC wraps a log density whose parameters may be invalid in ``CheckParameterValue`` (``sigma >
0``, a mixture's weights summing to one, ...). PyMC's own sampler compiles each such check
into ``switch(all(conditions), logp, -inf)`` (PyMC's ``local_check_parameter_to_ninf_switch``
rewrite, applied by ``pymc.pytensorf.compile`` while ``model.check_bounds`` is true), so NUTS
rejects every point where a check fails. JAX cannot raise from traced code, and PyTensor's and
PyMC's JAX conversions of ``CheckAndRaise`` return the value unchecked: the log density stays
finite outside the support and the sampler wanders there. A truncated stick-breaking mixture
(the weights sum to one only when the last stick is short) sampled a weight's posterior sd 6x
too wide that way.

:func:`checks_to_log_density` rewrites a graph the way PyMC's own sampler does; the other
``CheckAndRaise`` nodes (assertions that would raise in PyMC) are dropped, as PyMC's JAX path
drops them.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.logprob.utils import CheckParameterValue
from pytensor.graph.basic import Variable
from pytensor.graph.fg import FunctionGraph
from pytensor.raise_op import CheckAndRaise


def _as_log_density(value: Variable, conditions: list[Variable]) -> Variable:
    """``value`` where every condition holds, else -inf (PyMC's switch, in ``value``'s dtype)."""
    condition = pt.all([pt.all(c) for c in conditions]) if len(conditions) > 1 else conditions[0]
    checked = pt.switch(pt.all(condition), value, -np.inf)
    return checked if checked.dtype == value.dtype else pt.cast(checked, value.dtype)


def checks_to_log_density(fgraph: FunctionGraph, check_bounds: bool = True) -> None:
    """Replace, in place, every ``CheckAndRaise`` of ``fgraph`` by what JAX can trace.

    A parameter check that PyMC may turn into -inf becomes that switch (``check_bounds=False``,
    a model built with ``pm.Model(check_bounds=False)``, drops it as PyMC does); any other check
    is replaced by the value it guards.
    """
    for node in [n for n in fgraph.toposort() if isinstance(n.op, CheckAndRaise)]:
        value, *conditions = node.inputs
        op = node.op
        if check_bounds and isinstance(op, CheckParameterValue) and op.can_be_replaced_by_ninf:
            replacement = _as_log_density(value, conditions)
        else:
            replacement = value
        fgraph.replace(node.outputs[0], replacement, import_missing=True)
