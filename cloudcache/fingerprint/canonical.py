"""Canonical encoding of Python values and pytensor graphs into a :class:`Digest`.

The encoding never uses ``hash()``, ``id()`` (except as a cycle guard), auto-generated names,
pickled bytes or printed graphs: two processes that build the same model produce the same
token stream. Objects it cannot encode faithfully raise :class:`UnkeyableObject`, so a call is
run uncached instead of being cached under a key that could collide.

An encoder runs in one of two modes:

* **content** (``live=None``): everything is encoded by its current content;
* **structure** (``live=[...]``): immutable parts (graph topology, op properties, types, library
  functions) are encoded, and every value that can change in place (arrays, shared values,
  containers, Python functions, objects, user classes) is appended to ``live`` and stands in the
  stream as its position only. The structure digest can then be memoised while the live values
  are re-encoded by content on every call (:func:`live_digest`).
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
import functools
import sys
import types
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
from pytensor.graph.basic import Apply, Constant, Variable
from pytensor.graph.op import Op
from pytensor.graph.traversal import io_toposort
from pytensor.graph.type import Type
from pytensor.tensor.random.type import RandomType
from pytensor.tensor.sharedvar import SharedVariable

from cloudcache.compat.pymc import class_registries
from cloudcache.compat.pytensor import is_instance
from cloudcache.errors import UnkeyableObject
from cloudcache.fingerprint.code import (
    code_parts,
    global_reads,
    is_importable_library_object,
    is_library_module,
    qualified_name,
)
from cloudcache.fingerprint.digest import Digest

MAX_DEPTH = 64

#: PyMC's per-class registries: a class built at run time carries its log density here.
DISPATCHERS: dict[str, Any] = class_registries()

#: Compilers' per-class registries (a custom op's JAX or Numba implementation), read only once
#: their module is loaded: registering an implementation loads it.
BACKEND_DISPATCHERS: dict[str, tuple[str, str]] = {
    "jax_funcify": ("pytensor.link.jax.dispatch.basic", "jax_funcify"),
    "numba_funcify": ("pytensor.link.numba.dispatch.basic", "numba_funcify"),
}

#: Class attributes that say nothing about behaviour.
IGNORED_CLASS_ATTRIBUTES = frozenset(
    {
        "__module__",
        "__qualname__",
        "__doc__",
        "__dict__",
        "__weakref__",
        "__firstlineno__",
        "__static_attributes__",
        "__annotations__",
        "__annotate__",
        "__orig_bases__",
        "__parameters__",
        "__type_params__",
        "_abc_impl",
        # copyreg caches this on a class the first time one of its instances is copied or
        # pickled (PyMC's sampler does): it says nothing about behaviour.
        "__slotnames__",
    }
)

#: Attributes derived from an op's inner graph, which is walked on its own (``_inner_graph``):
#: PyTensor 2's ``Scan`` (no ``__props__``) keeps ``_hash_inner_graph``, Python's ``hash()`` of
#: the inner graph, which changes with every process's hash seed.
DERIVED_ATTRIBUTES = frozenset({"fgraph", "_hash_inner_graph"})

#: Python singletons that are constants of code objects (``...`` in ``x[..., 0]``).
SINGLETONS = {id(Ellipsis): "Ellipsis", id(NotImplemented): "NotImplemented"}

_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: the class was defined in Python, not in C


class GraphEncoder:
    """Encodes values and pytensor graphs; variables are numbered in first-seen order."""

    def __init__(
        self, digest: Digest, live: list[Any] | None = None, pinned: list[Any] | None = None
    ) -> None:
        self.digest = digest
        #: Structure mode: values re-encoded by content on every call (see module docstring).
        self.live = live
        #: Identity mode (in-process keys only, :mod:`cloudcache.fingerprint.graph`): a value
        #: that cannot be encoded by content is keyed by identity and appended here (the caller
        #: keeps it alive) instead of raising :class:`UnkeyableObject`.
        self.pinned = pinned
        #: Shared variables (``pm.Data`` and friends) met by the walk, in first-seen order. In
        #: structure mode only their position and type enter the digest; their values are
        #: hashed by the caller at call time.
        self.shared_leaves: list[SharedVariable] = []
        self._variable_ids: dict[Variable, int] = {}
        self._active: dict[int, int] = {}

    # -- graphs -------------------------------------------------------------------------
    def graph(self, outputs: Sequence[Variable]) -> list[int]:
        """Encode the graph computing ``outputs``; return their ids in this encoding."""
        outputs = [out for out in outputs if out is not None]
        for node in io_toposort([], outputs):
            if node.outputs[0] not in self._variable_ids:
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
            for node in io_toposort([], [var]):
                if node.outputs[0] not in self._variable_ids:
                    self._apply(node)
            return self._variable_ids[var]
        self._leaf(var)
        self._variable_ids[var] = len(self._variable_ids)
        return self._variable_ids[var]

    def _leaf(self, var: Variable) -> None:
        if is_instance(var.type, RandomType):
            # Random generators contribute their type only, never their state.
            self.digest.token("rng")
            self.value(var.type)
        elif is_instance(var, Constant):
            self.digest.token("constant")
            self.value(var.type)
            self.value(var.data)
        elif is_instance(var, SharedVariable):
            # Keyed by position in the walk, never by name: two shared variables that happen to
            # share a name both count.
            self.digest.token("shared", f"{len(self.shared_leaves)}:{var.name or ''}")
            self.value(var.type)
            self.shared_leaves.append(var)
            if self.live is None:
                self.value(var.get_value(borrow=True))
        else:
            self.digest.token("input", var.name or "")
            self.value(var.type)

    def function_graph(self, inputs: Sequence[Variable], outputs: Sequence[Variable]) -> list[int]:
        """Encode the graph from ``inputs`` (numbered by position, keyed by type only) to
        ``outputs``; return the outputs' ids in this encoding."""
        for position, inp in enumerate(inputs):
            self._variable_ids[inp] = position
            self.value(inp.type)
        return self.graph(outputs)

    def _inner_graph(self, op: Any) -> None:
        fgraph = getattr(op, "fgraph", None)
        if fgraph is None:
            return
        inner = GraphEncoder(self.digest, self.live, self.pinned)
        inner.shared_leaves = self.shared_leaves
        outputs = inner.function_graph(fgraph.inputs, fgraph.outputs)
        inner.digest.token("inner-outputs", ",".join(map(str, outputs)))

    def _pin(self, obj: Any) -> bool:
        """In identity mode, key ``obj`` by identity (and keep it alive); else ``False``."""
        if self.pinned is None:
            return False
        self.digest.token("identity", f"{type(obj).__qualname__}@{id(obj)}")
        self.pinned.append(obj)
        return True

    # -- values -------------------------------------------------------------------------
    def value(self, obj: Any, depth: int = 0) -> None:
        """Encode any supported value (see the module docstring for the two modes)."""
        if depth > MAX_DEPTH:
            raise UnkeyableObject("a value nested too deeply to fingerprint")
        token = self.digest.token
        if obj is None or isinstance(obj, bool | int | float | complex | str):
            token(type(obj).__name__, repr(obj))
        elif id(obj) in SINGLETONS:
            token("singleton", SINGLETONS[id(obj)])
        elif isinstance(obj, bytes):
            token("bytes", obj)
        elif is_instance(obj, Variable):
            token("var", str(self._variable(obj)))
        elif isinstance(obj, np.generic):
            token("scalar")
            self.digest.array(np.asarray(obj))
        elif isinstance(obj, np.dtype):
            token("dtype", obj.str)
        elif isinstance(obj, enum.Enum):
            token("enum", f"{qualified_name(type(obj))}.{obj.name}")
        elif isinstance(obj, types.ModuleType):
            token("module", obj.__name__)
        elif isinstance(obj, range | slice):
            self.value((type(obj).__name__, obj.start, obj.stop, obj.step), depth + 1)
        elif isinstance(obj, tuple):
            kind = "tuple" if type(obj) is tuple else qualified_name(type(obj))
            token(kind, str(len(obj)))
            for item in obj:
                self.value(item, depth + 1)
        elif isinstance(obj, frozenset):
            self._unordered(obj)
        elif is_mapping(obj) and not isinstance(obj, MutableMapping):
            self._mapping(obj, depth)
        elif isinstance(obj, types.CodeType):
            token("code")
            self.value(code_parts(obj), depth + 1)
        elif isinstance(obj, np.ufunc):
            token("ufunc", obj.__name__)
        elif _is_named_library_object(obj):
            token("library", qualified_name(obj))
        elif self.live is None or _is_library_graph_object(obj):
            self._mutable(obj, depth)
        else:
            # Anything else can change in place: encoded by content on every call.
            token("live", str(len(self.live)))
            self.live.append(obj)

    def _mutable(self, obj: Any, depth: int) -> None:
        marker = id(obj)  # cycle guard only; never part of the digest
        if marker in self._active:
            # A reference back to an object being encoded: named by its place on the stack.
            self.digest.token("cycle", str(self._active[marker]))
            return
        self._active[marker] = len(self._active)
        try:
            self._by_content(obj, depth)
        finally:
            del self._active[marker]

    def _by_content(self, obj: Any, depth: int) -> None:
        token = self.digest.token
        if isinstance(obj, np.ndarray):
            token("array")
            self.digest.array(obj)
        elif isinstance(obj, type):
            self._class(obj, depth)
        elif isinstance(obj, types.FunctionType):
            self._function(obj, depth)
        elif isinstance(obj, types.MethodType):
            token("method")
            self.value(obj.__func__, depth + 1)
            self.value(obj.__self__, depth + 1)
        elif isinstance(obj, types.BuiltinFunctionType | types.BuiltinMethodType):
            self._builtin(obj, depth)
        elif isinstance(obj, functools.partial):
            token("partial")
            self.value((obj.func, obj.args, dict(obj.keywords)), depth + 1)
        elif isinstance(obj, property | staticmethod | classmethod):
            token(type(obj).__name__)
            inner = obj.__func__ if not isinstance(obj, property) else obj.fget
            self.value((inner, getattr(obj, "fset", None)), depth + 1)
        elif is_mapping(obj):
            self._mapping(obj, depth)
        elif isinstance(obj, list):
            token("list", str(len(obj)))
            for item in obj:
                self.value(item, depth + 1)
        elif isinstance(obj, set):
            self._unordered(obj)
        elif _is_pandas(obj):
            self._pandas(obj, depth)
        else:
            self._object(obj, depth)

    def _mapping(self, obj: Mapping, depth: int, frozen: bool = False) -> None:
        if all(type(key) is str for key in obj):
            # Plain string keys sort as themselves; others by their content digest.
            items = sorted(((key, key, item) for key, item in obj.items()), key=_first)
        else:
            items = sorted(((content_digest(k), k, v) for k, v in obj.items()), key=_first)
        self.digest.token("mapping", str(len(items)))
        for _, key, item in items:
            self.value(key, depth + 1)
            self._frozen(item, depth + 1) if frozen else self.value(item, depth + 1)

    def _frozen(self, obj: Any, depth: int) -> None:
        """Containers held by a library op or type: immutable by convention, walked in place."""
        if isinstance(obj, list | tuple):
            self.digest.token(type(obj).__name__, str(len(obj)))
            for item in obj:
                self._frozen(item, depth + 1)
        elif isinstance(obj, dict):
            self._mapping(obj, depth, frozen=True)
        else:
            self.value(obj, depth)

    def _unordered(self, obj: set | frozenset) -> None:
        encoded = sorted(content_digest(item) for item in obj)
        self.digest.token("set", ",".join(encoded))

    def _function(self, fn: types.FunctionType, depth: int) -> None:
        """Bytecode and everything it reads: closure cells, globals, defaults, attributes."""
        token = self.digest.token
        token("function", qualified_name(fn))
        library = is_library_module(fn.__module__)
        if not library:
            self.value(fn.__code__, depth + 1)
        cells = tuple(_cell_contents(cell) for cell in fn.__closure__ or ())
        self.value(cells, depth + 1)
        self.value(fn.__defaults__, depth + 1)
        self.value(fn.__kwdefaults__, depth + 1)
        if fn.__dict__:
            self.value(dict(fn.__dict__), depth + 1)
        if library:
            return
        for name, attributes in global_reads(fn.__code__):
            if name in fn.__globals__:
                token("global", name)
                found = fn.__globals__[name]
                self.value(found, depth + 1)
                if isinstance(found, types.ModuleType) and not is_library_module(found.__name__):
                    # A user module is keyed by name: what the code reads off it counts.
                    for attribute in attributes:
                        token("reads", attribute)
                        self.value(getattr(found, attribute, None), depth + 1)
            elif hasattr(builtins, name):
                token("builtin", name)
            else:
                token("unbound", name)

    def _builtin(self, fn: Any, depth: int) -> None:
        owner = getattr(fn, "__self__", None)
        if owner is None or isinstance(owner, types.ModuleType):
            module = getattr(fn, "__module__", None) or getattr(owner, "__name__", None)
            if not is_library_module(module):
                if self._pin(fn):
                    return
                raise UnkeyableObject(
                    f"the C-extension callable {module}.{fn.__name__}, which cannot be "
                    "fingerprinted by content"
                )
            self.digest.token("builtin", f"{module}.{fn.__name__}")
            return
        self.digest.token("bound-builtin", fn.__name__)
        self.value(owner, depth + 1)

    def _class(self, cls: type, depth: int) -> None:
        """A class not importable from a library: its bases, attributes and PyMC registrations."""
        token = self.digest.token
        token("class", qualified_name(cls))
        self.value(cls.__bases__, depth + 1)
        attributes = {
            name: value
            for name, value in vars(cls).items()
            if name not in IGNORED_CLASS_ATTRIBUTES and not _is_descriptor_slot(value)
        }
        self.value(attributes, depth + 1)
        for name, dispatcher in _dispatchers():
            registered = dispatcher.registry.get(cls)
            if registered is not None and not (
                name in BACKEND_DISPATCHERS and is_library_module(registered.__module__)
            ):
                # A compiler's own implementation is registered lazily (when its module loads or
                # a model first compiles) and is keyed by the library versions: only a user's
                # implementation is content, or the key would depend on what ran before.
                token("registered", name)
                self.value(registered, depth + 1)

    def _object(self, obj: Any, depth: int) -> None:
        cls = type(obj)
        self.digest.token("object")
        self.value(cls, depth + 1)
        props = getattr(cls, "__props__", None)
        library = is_importable_library_object(cls)
        if props is not None and library:
            for name in props:
                self.digest.token("prop", name)
                self._frozen(getattr(obj, name), depth + 1)
        elif dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                self.digest.token("field", f.name)
                self.value(getattr(obj, f.name), depth + 1)
        elif cls.__flags__ & _HEAP_TYPE and (hasattr(obj, "__dict__") or hasattr(cls, "__slots__")):
            self._mapping(_attributes(obj), depth + 1, frozen=library)
        elif not self._pin(obj):
            raise UnkeyableObject(
                f"a {qualified_name(cls)} object, which cannot be fingerprinted by content"
            )
        self._inner_graph(obj)

    def _pandas(self, obj: Any, depth: int) -> None:
        token = self.digest.token
        token("pandas", type(obj).__name__)
        if hasattr(obj, "columns"):
            self.value([(str(c), obj[c].to_numpy()) for c in obj.columns], depth + 1)
        else:
            self.value((getattr(obj, "name", None), obj.to_numpy()), depth + 1)
        if hasattr(obj, "index"):
            self.value(obj.index.to_numpy(), depth + 1)


def _dispatchers() -> list[tuple[str, Any]]:
    """PyMC's registries, and the compilers' registries already loaded."""
    found = list(DISPATCHERS.items())
    for name, (module, attribute) in BACKEND_DISPATCHERS.items():
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, attribute):
            found.append((name, getattr(loaded, attribute)))
    return found


def is_mapping(obj: Any) -> bool:
    """``isinstance(obj, Mapping)``, asked only of objects with ``keys``.

    The first ABC check of each new class walks every registered subclass of ``Mapping``: on
    the first key of a process that was ~7 ms for the graph's op and type objects, none of
    which is a mapping (a real mapping, registered or not, has ``keys``).
    """
    return hasattr(type(obj), "keys") and isinstance(obj, Mapping)


def content_digest(obj: Any) -> str:
    """Hex digest of one value's canonical encoding, by content."""
    digest = Digest()
    GraphEncoder(digest).value(obj)
    return digest.hexdigest()


def live_digest(values: Sequence[Any]) -> str:
    """Hex digest of the current content of the live values a structure walk collected."""
    digest = Digest()
    encoder = GraphEncoder(digest)
    for value in values:
        encoder.value(value)
    return digest.hexdigest()


def _is_named_library_object(obj: Any) -> bool:
    """Library functions and classes with no state of their own: keyed by name."""
    if isinstance(obj, types.FunctionType):
        return (
            obj.__closure__ is None
            and not obj.__defaults__
            and not obj.__kwdefaults__
            and is_importable_library_object(obj)
        )
    if isinstance(obj, type) or callable(obj):
        return is_importable_library_object(obj)
    return False


def _first(entry: tuple[str, Any, Any]) -> str:
    return entry[0]


def _is_library_graph_object(obj: Any) -> bool:
    """An op, type or frozen dataclass of a library class: immutable, so structure."""
    frozen = dataclasses.is_dataclass(obj) and obj.__dataclass_params__.frozen  # type: ignore[union-attr]
    return (is_instance(obj, Op, Type) or frozen) and is_importable_library_object(type(obj))


def _is_pandas(obj: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame | pandas.Series | pandas.Index)


def _is_descriptor_slot(value: Any) -> bool:
    """Slot and getset descriptors made by ``__slots__``: they hold no class-level state."""
    return isinstance(value, types.MemberDescriptorType | types.GetSetDescriptorType)


def _cell_contents(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell: a name assigned later in the enclosing function
        return "<empty cell>"


def _attributes(obj: Any) -> dict[str, Any]:
    """Public and private instance attributes, excluding caches of derived values."""
    attributes: dict[str, Any] = {}
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                attributes[name] = getattr(obj, name)
    attributes.update(getattr(obj, "__dict__", {}))
    return {
        k: v
        for k, v in attributes.items()
        if not k.startswith("_cache") and k not in DERIVED_ATTRIBUTES
    }
