"""Which of a graph's data inputs may become runtime arguments of the compiled program.

Under ``jit`` an argument is a traced value: fine for arithmetic, fatal for anything that fixes
a shape, a split, an index set, a boolean mask, a dimension length or a branch (JAX then
fails, or worse, computes something else). A data input is *arithmetic-only* when every path
from it reaches the outputs through ops that only do arithmetic on it (elementwise math,
reductions, broadcasting, linear algebra, the *indexed* operand of indexing, ...). Everything
else (an index, a mask, a shape, a length, a scan's step count, an op this module does not
know) keeps the input a compile-time constant, i.e. part of the compiled program's identity.
The rule is deliberately conservative: an unknown op only costs a recompilation when that
input's values change, never a wrong result.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytensor.compile.ops import DeepCopyOp, ViewOp
from pytensor.graph.basic import Variable
from pytensor.graph.fg import FunctionGraph, Output
from pytensor.graph.op import Op
from pytensor.raise_op import CheckAndRaise
from pytensor.tensor.basic import Alloc, ExtractDiag, Join, Split
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.elemwise import CAReduce, DimShuffle, Elemwise
from pytensor.tensor.extra_ops import CumOp
from pytensor.tensor.math import Dot
from pytensor.tensor.shape import Reshape, Shape, Shape_i, SpecifyShape
from pytensor.tensor.special import LogSoftmax, Softmax

from cloudcache.compat.pytensor import (
    INC_SUBTENSOR_OPS,
    SPECIAL_ARITHMETIC_OPS,
    SUBTENSOR_OPS,
)

#: Ops whose every input is an arithmetic operand (the output's values depend on it, its shape
#: is fixed by the inputs' static shapes).
_ARITHMETIC_OPS: tuple[type[Op], ...] = (
    Elemwise,
    DimShuffle,
    CAReduce,
    Dot,
    Blockwise,
    CumOp,
    Softmax,
    LogSoftmax,
    *SPECIAL_ARITHMETIC_OPS,
    ExtractDiag,
    Join,
    CheckAndRaise,
    ViewOp,
    DeepCopyOp,
)

#: Ops that read only their inputs' (static) shapes, never their values.
_SHAPE_READERS: tuple[type[Op], ...] = (Shape, Shape_i)


def _operand_positions(op: Op) -> tuple[int, ...] | None:
    """Input positions that are arithmetic operands of ``op`` (``None``: every position)."""
    if isinstance(op, _ARITHMETIC_OPS):
        return None
    if isinstance(op, INC_SUBTENSOR_OPS):
        return (0, 1)  # the array and the increment; the rest are indices
    if isinstance(op, (*SUBTENSOR_OPS, SpecifyShape, Reshape, Alloc, Split)):
        return (0,)  # the array; the rest are indices, shapes or split sizes
    return ()


def arithmetic_only(
    inputs: Sequence[Variable], outputs: Sequence[Variable], candidates: Sequence[Variable]
) -> list[bool]:
    """For each of ``candidates`` (among ``inputs``): does it only flow into arithmetic?"""
    fgraph = FunctionGraph(inputs=list(inputs), outputs=list(outputs), clone=False)
    verdicts = []
    for candidate in candidates:
        verdicts.append(_flows_into_arithmetic_only(fgraph, candidate))
    return verdicts


def _flows_into_arithmetic_only(fgraph: FunctionGraph, start: Variable) -> bool:
    pending, seen = [start], {start}
    while pending:
        var = pending.pop()
        for node, position in fgraph.clients.get(var, []):
            if isinstance(node.op, (Output, *_SHAPE_READERS)):
                continue
            positions = _operand_positions(node.op)
            if positions is not None and position not in positions:
                return False
            for out in node.outputs:
                if out not in seen:
                    seen.add(out)
                    pending.append(out)
    return True
