"""The PyTensor op classes whose names or existence differ between PyTensor 2.x and 3.x.

PyMC 5 runs on PyTensor 2.x, PyMC 6 on 3.x. PyTensor 3 has dedicated ops for ``logsumexp``,
``logaddexp``, ``xlogy`` and ``xlog1py`` (2.x builds them from ``Elemwise`` and ``CAReduce``,
which :mod:`cloudcache.backends.numpyro.data_flow` already knows) and one base class of the reading
``Subtensor`` ops (2.x has unrelated classes). The ``...Subtensor1`` ops are in neither list on
either version (their operands stay constants: conservative, never wrong).
"""

from __future__ import annotations

from typing import Any

import pytensor
from pytensor.graph.op import Op
from pytensor.tensor.subtensor import (
    AdvancedIncSubtensor,
    AdvancedSubtensor,
    IncSubtensor,
    Subtensor,
)

#: The major version of the installed PyTensor (2 with PyMC 5, 3 with PyMC 6).
PYTENSOR_MAJOR: int = int(pytensor.__version__.split(".", 1)[0])

#: Ops that only combine their operands arithmetically and exist only in PyTensor 3.
SPECIAL_ARITHMETIC_OPS: tuple[type[Op], ...]

#: Ops that read part of their first input (the others are indices).
SUBTENSOR_OPS: tuple[type[Op], ...]

#: Ops that write their second input into part of their first (the others are indices).
INC_SUBTENSOR_OPS: tuple[type[Op], ...] = (IncSubtensor, AdvancedIncSubtensor)

if PYTENSOR_MAJOR >= 3:
    from pytensor.tensor.special import LogAddExp, LogSumExp, XLog1PY, XLogY
    from pytensor.tensor.subtensor import BaseSubtensor

    SPECIAL_ARITHMETIC_OPS = (LogSumExp, LogAddExp, XLogY, XLog1PY)
    SUBTENSOR_OPS = (BaseSubtensor,)
else:
    SPECIAL_ARITHMETIC_OPS = ()
    SUBTENSOR_OPS = (Subtensor, AdvancedSubtensor)  # what BaseSubtensor covers in 3.x


def reduction_settings(op: Op) -> dict[str, Any]:
    """Keywords (besides ``axis``) that rebuild the ``Max``/``Min`` reduction ``op``.

    PyTensor 3's reductions take an ``initial`` flag (reduce empty axes to the identity);
    PyTensor 2's take none.
    """
    return {"initial": op.initial} if PYTENSOR_MAJOR >= 3 else {}


def reduction_initial(op: Op, dtype: Any) -> Any:
    """The value a ``Max``/``Min`` ``op`` gives over empty axes (``None``: an error, as 2.x)."""
    return op.initial_value(dtype) if PYTENSOR_MAJOR >= 3 else None
