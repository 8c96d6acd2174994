"""Canonical encoding of Python values and pytensor graphs into a :class:`Digest`.

The encoding never uses ``hash()``, ``id()`` (except as a cycle guard), auto-generated names,
pickled bytes or printed graphs: two processes that build the same model produce the same
token stream. Objects it cannot encode faithfully raise :class:`UnkeyableObject`, so a call is
run uncached instead of being cached under a key that could collide.
"""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pytensor.graph.basic import Apply, Constant, Variable
from pytensor.graph.traversal import io_toposort
from pytensor.tensor.random.type import RandomType
from pytensor.tensor.sharedvar import SharedVariable

from cloudcache.fingerprint.digest import Digest

MAX_DEPTH = 64


class UnkeyableObject(TypeError):
    """Raised for a value whose content cannot be encoded in a process-stable way."""


class GraphEncoder:
    """Encodes values and pytensor graphs; variables are numbered in first-seen order."""

    def __init__(self, digest: Digest) -> None:
        self.digest = digest
        #: Shared variables (``pm.Data`` and friends) met by the walk, by label. Their values are
        #: not part of the graph digest: the caller hashes them at call time, so a graph digest
        #: can be reused while ``pm.set_data`` changes values.
        self.shared_leaves: dict[str, SharedVariable] = {}
        self._variable_ids: dict[Variable, int] = {}
        self._active: set[int] = set()

    # -- graphs -------------------------------------------------------------------------
    def graph(self, outputs: Sequence[Variable]) -> list[int]:
        """Encode the graph computing ``outputs``; return their ids in this encoding."""
        outputs = [out for out in outputs if out is not None]
        for node in io_toposort([], outputs):
            self._apply(node)
        return [self._variable(out) for out in outputs]

    def _apply(self, node: Apply) -> None:
        input_ids = [self._variable(inp) for inp in node.inputs]
        self.digest.token("apply")
        self.value(node.op)
        self.digest.token("inputs", ",".join(map(str, input_ids)))
        for out in node.outputs:
            self._variable_ids[out] = len(self._variable_ids)
            self.value(out.type)

    def _variable(self, var: Variable) -> int:
        known = self._variable_ids.get(var)
        if known is not None:
            return known
        if var.owner is not None:
            self._apply(var.owner)
            return self._variable_ids[var]
        self._leaf(var)
        self._variable_ids[var] = len(self._variable_ids)
        return self._variable_ids[var]

    def _leaf(self, var: Variable) -> None:
        if isinstance(var.type, RandomType):
            # Random generators contribute their type only, never their state.
            self.digest.token("rng")
            self.value(var.type)
        elif isinstance(var, Constant):
            self.digest.token("constant")
            self.value(var.type)
            self.value(var.data)
        elif isinstance(var, SharedVariable):
            label = var.name or f"#{len(self._variable_ids)}"
            self.digest.token("shared", label)
            self.value(var.type)
            self.shared_leaves[label] = var
        else:
            self.digest.token("input", var.name or "")
            self.value(var.type)

    def _inner_graph(self, op: Any) -> None:
        fgraph = getattr(op, "fgraph", None)
        if fgraph is None:
            return
        inner = GraphEncoder(self.digest)
        for position, inp in enumerate(fgraph.inputs):
            inner._variable_ids[inp] = position
            inner.value(inp.type)
        inner.digest.token("inner-outputs", ",".join(map(str, inner.graph(fgraph.outputs))))

    # -- values -------------------------------------------------------------------------
    def value(self, obj: Any, depth: int = 0) -> None:
        """Encode any supported value by content."""
        if depth > MAX_DEPTH:
            raise UnkeyableObject("value nested too deeply to fingerprint")
        token = self.digest.token
        if obj is None or isinstance(obj, bool | int | float | complex | str):
            token(type(obj).__name__, repr(obj))
        elif isinstance(obj, bytes):
            token("bytes", obj)
        elif isinstance(obj, Variable):
            token("var", str(self._variable(obj)))
        elif isinstance(obj, np.ndarray | np.generic):
            token("array")
            self.digest.array(np.asarray(obj))
        elif isinstance(obj, np.dtype):
            token("dtype", obj.str)
        elif isinstance(obj, enum.Enum):
            token("enum", f"{_qualname(type(obj))}.{obj.name}")
        elif isinstance(obj, type):
            token("class", _qualname(obj))
        elif isinstance(obj, Mapping):
            self._mapping(obj, depth)
        elif isinstance(obj, list | tuple):
            token(type(obj).__name__, str(len(obj)))
            for item in obj:
                self.value(item, depth + 1)
        elif isinstance(obj, set | frozenset):
            self._unordered(obj, depth)
        elif isinstance(obj, types.FunctionType | types.MethodType | types.BuiltinFunctionType):
            self._function(obj, depth)
        elif isinstance(obj, slice):
            self.value(("slice", obj.start, obj.stop, obj.step), depth + 1)
        else:
            self._object(obj, depth)

    def _mapping(self, obj: Mapping, depth: int) -> None:
        items = []
        for key, item in obj.items():
            items.append((content_digest(key), key, item))
        self.digest.token("mapping", str(len(items)))
        for _, key, item in sorted(items, key=lambda entry: entry[0]):
            self.value(key, depth + 1)
            self.value(item, depth + 1)

    def _unordered(self, obj: Iterable, depth: int) -> None:
        encoded = sorted(content_digest(item) for item in obj)
        self.digest.token("set", ",".join(encoded))

    def _function(self, fn: Any, depth: int) -> None:
        self.digest.token("function", _qualname(fn))
        code = getattr(fn, "__code__", None)
        if code is not None:
            self.digest.token("code", code.co_code)
            consts = [c for c in code.co_consts if not isinstance(c, types.CodeType)]
            self.value(tuple(consts), depth + 1)

    def _object(self, obj: Any, depth: int) -> None:
        marker = id(obj)  # cycle guard only; never part of the digest
        if marker in self._active:
            self.digest.token("cycle", _qualname(type(obj)))
            return
        self._active.add(marker)
        try:
            self.digest.token("object", _qualname(type(obj)))
            props = getattr(type(obj), "__props__", None)
            if props is not None:
                for name in props:
                    self.digest.token("prop", name)
                    self.value(getattr(obj, name), depth + 1)
                self._inner_graph(obj)
            elif dataclasses.is_dataclass(obj):
                for f in dataclasses.fields(obj):
                    self.digest.token("field", f.name)
                    self.value(getattr(obj, f.name), depth + 1)
            elif hasattr(obj, "__dict__") or hasattr(type(obj), "__slots__"):
                self.value(_attributes(obj), depth + 1)
                self._inner_graph(obj)
            else:
                raise UnkeyableObject(f"cannot fingerprint {_qualname(type(obj))} by content")
        finally:
            self._active.discard(marker)


def content_digest(obj: Any) -> str:
    """Hex digest of one value's canonical encoding."""
    digest = Digest()
    GraphEncoder(digest).value(obj)
    return digest.hexdigest()


def _attributes(obj: Any) -> dict[str, Any]:
    """Public and private instance attributes, excluding caches of derived values."""
    attributes: dict[str, Any] = {}
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                attributes[name] = getattr(obj, name)
    attributes.update(getattr(obj, "__dict__", {}))
    return {k: v for k, v in attributes.items() if not k.startswith("_cache") and k != "fgraph"}


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
