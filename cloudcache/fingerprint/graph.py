"""Structural key of a PyTensor graph, for the in-process compiled-kernel cache.

The key covers what the compiled JAX function depends on: every node's op (type and
``__props__``, recursing into inner graphs), how nodes connect, the type of every input and the
full content of every constant. It deliberately leaves out the *values* of the graph inputs
(model value variables and data placeholders), so two calls that differ only in data values
get the same key. Ops that define no ``__props__`` and no inner graph (PyTensor's scalar ops)
are keyed by their type and instance attributes, so a model unpickled on a Dask worker (new op
objects every time) finds the kernel compiled for the same structure before. Values that cannot
be described are keyed by identity and kept alive by :class:`GraphKey`, so an identity can never
be reused while the key exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.op import HasInnerGraph, Op
from pytensor.graph.traversal import toposort


@dataclass(frozen=True)
class GraphKey:
    """Hex digest of a graph's structure, plus the identity-keyed ops it references."""

    digest: str
    pinned: tuple[Any, ...] = field(default=(), compare=False, repr=False)


class _Hasher:
    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=20)
        self.pinned: list[Any] = []

    def add(self, text: str) -> None:
        self._hash.update(text.encode())
        self._hash.update(b"\x00")

    def add_array(self, value: np.ndarray) -> None:
        array = np.ascontiguousarray(value)
        self.add(f"array:{array.dtype.str}:{array.shape}")
        self._hash.update(memoryview(array).cast("B"))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _describe(value: Any, hasher: _Hasher) -> str:
    """Canonical text for an op property, hashing arrays and inner graphs into ``hasher``."""
    if isinstance(value, np.ndarray | np.generic):
        hasher.add_array(np.asarray(value))
        return "<array>"
    if isinstance(value, Op):
        _add_op(value, hasher)
        return "<op>"
    if isinstance(value, list | tuple):
        return "(" + ",".join(_describe(item, hasher) for item in value) + ")"
    if isinstance(value, Mapping):  # dict, and PyTensor's frozendict
        items = sorted(value.items(), key=lambda kv: repr(kv[0]))
        return "{" + ",".join(f"{k!r}:{_describe(v, hasher)}" for k, v in items) + "}"
    if isinstance(value, str | int | float | bool | complex | type(None)):
        return repr(value)
    props = getattr(value, "__props__", None)
    if isinstance(props, tuple) and not isinstance(value, type):  # e.g. a PyTensor Type
        kind = type(value)
        parts = ",".join(f"{name}={_describe(getattr(value, name), hasher)}" for name in props)
        return f"{kind.__module__}.{kind.__qualname__}({parts})"
    if isinstance(value, type) or callable(value):
        module = getattr(value, "__module__", "")
        name = getattr(value, "__qualname__", None)
        if name is not None and "<lambda>" not in name and "<locals>" not in name:
            return f"{module}.{name}"
    hasher.pinned.append(value)
    return f"<{type(value).__qualname__}@{id(value)}>"


def _add_op(op: Op, hasher: _Hasher) -> None:
    kind = type(op)
    hasher.add(f"op:{kind.__module__}.{kind.__qualname__}")
    props = getattr(op, "__props__", None)
    if props is not None:
        for name in props:
            hasher.add(f"{name}={_describe(getattr(op, name), hasher)}")
    if isinstance(op, HasInnerGraph):
        inner_inputs = list(op.inner_inputs)
        _add_graph(inner_inputs, list(op.inner_outputs), hasher)
    elif props is None:
        hasher.add(f"attributes={_describe(vars(op), hasher)}")


def _add_graph(inputs: Sequence[Variable], outputs: Sequence[Variable], hasher: _Hasher) -> None:
    names: dict[Variable, str] = {var: f"i{n}" for n, var in enumerate(inputs)}
    for var in inputs:
        hasher.add(f"input:{var.type}")
    for n, node in enumerate(toposort(outputs, blockers=inputs)):
        args = []
        for var in node.inputs:
            if var not in names:
                if isinstance(var, Constant):
                    hasher.add(f"const:{var.type}")
                    hasher.add(_describe(np.asarray(var.data), hasher))
                    names[var] = f"c{len(names)}"
                else:
                    raise ValueError(f"graph input {var} is neither an input nor a constant")
            args.append(names[var])
        _add_op(node.op, hasher)
        hasher.add("args:" + ",".join(args))
        for k, out in enumerate(node.outputs):
            names[out] = f"n{n}.{k}"
            hasher.add(f"out:{out.type}")
    for out in outputs:
        if out not in names:
            if isinstance(out, Constant):
                hasher.add(_describe(np.asarray(out.data), hasher))
                names[out] = f"c{len(names)}"
            else:
                raise ValueError(f"graph output {out} does not depend on the inputs")
        hasher.add(f"result:{names[out]}")


def graph_key(inputs: Sequence[Variable], outputs: Sequence[Variable]) -> GraphKey:
    """Key of the graph from ``inputs`` to ``outputs`` (input values excluded)."""
    hasher = _Hasher()
    _add_graph(inputs, outputs, hasher)
    return GraphKey(hasher.hexdigest(), tuple(hasher.pinned))
