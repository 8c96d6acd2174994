"""The shared hooks of the one-shot inference calls: ``sample_smc``, ``find_MAP``, ``fit``.

Each of these is one PyMC function that takes the model from the context, a few arguments and a
seed, and returns one result. A kind module (``smc.py``, ``find_map.py``, ``fit.py``) says only
what is particular to its function: which arguments cannot change the result, the key form of
its seed, a file label, and how its result becomes a stored tree and comes back. Binding the
call, the model check, the plan and running it are written once here.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from cloudcache.calls.path import Call, CallKind, Plan
from cloudcache.calls.request import generator_state
from cloudcache.compat.pymc import as_pymc_result, as_pymc_result_in_order, as_tree
from cloudcache.errors import PassThrough, Uncacheable
from cloudcache.util.versions import installed_versions

#: The root attribute of a stored tree that lists its groups in the result's order.
GROUP_ORDER = "cloudcache_group_order"

#: Arguments of every one-shot call that cannot change its result.
ALWAYS_COSMETIC: frozenset[str] = frozenset({"progressbar", "progressbar_theme", "model"})


@dataclass(frozen=True)
class InferenceRequest:
    """One bound call: ``arguments`` go back to PyMC as they are; ``key_parts`` enter the key."""

    kind: str
    arguments: dict[str, Any] = field(repr=False)
    key_parts: dict[str, Any] = field(repr=False)
    label: str = ""

    def key_arguments(self) -> dict[str, Any]:
        return self.key_parts


def bind(call: Call) -> dict[str, Any]:
    """Every argument of ``call`` by name, defaults applied, ``**kwargs`` flattened in.

    Raises ``TypeError`` when PyMC would reject the call (it then reports it in its own words).
    """
    signature = inspect.signature(call.function)
    bound = signature.bind(*call.args, **call.kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(parameter.name, None) or {})
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL and arguments.pop(
            parameter.name, ()
        ):
            raise TypeError("extra positional arguments")  # PyMC reports it in its words
    return arguments


def generator_seed_key(random_seed: Any) -> Any:
    """Key form of a seed PyMC turns into one generator (``get_random_generator``).

    Spellings that give the same generator state (``1``, ``np.int64(1)``,
    ``np.random.default_rng(1)``) are one key; ``None`` stays "unseeded". The caller's generator
    is not advanced (a copy is read).
    """
    if random_seed is None:
        return None
    if isinstance(random_seed, bool | np.bool_):
        raise TypeError("random_seed must be an int, a sequence of ints, a Generator or None")
    from pymc.util import get_random_generator

    try:
        generator = get_random_generator(copy.deepcopy(random_seed))
    except (TypeError, ValueError) as error:
        raise TypeError(f"random_seed cannot seed PyMC's generator: {error}") from error
    return ("generator", generator_state(generator))


def count_label(value: Any) -> str:
    """A count argument as a file label writes it (``"x"`` for one that is not an integer)."""
    try:
        return str(int(value))
    except (TypeError, ValueError, OverflowError):
        return "x"


def variable_names(value: Any) -> Any:
    """Model variables (or their names) as a tuple of names; other values as they are."""
    if value is None or isinstance(value, str | Mapping):
        return value
    try:
        items = list(value)
    except TypeError:
        return value
    return tuple(getattr(item, "name", item) for item in items)


class InferenceCall(CallKind):
    """The hooks common to the one-shot calls; a subclass names its particulars.

    Subclasses set ``name``, ``cosmetic`` and ``label_of``, and may override ``check`` (refuse
    what cannot be cached), ``key_form`` (normalise arguments PyMC treats alike), ``to_tree``
    (the result as a storable tree) and the path's ``result`` (the tree as the caller gets it).
    """

    #: Arguments of this function that cannot change its result (beyond ``ALWAYS_COSMETIC``).
    cosmetic: frozenset[str] = frozenset()
    #: Libraries whose versions enter the key besides pymc and pytensor.
    libraries: tuple[str, ...] = ()
    #: The library whose function this is (the backend is named ``<library>-<name>``).
    library: str = "pymc"

    def __init__(self, model: pm.Model) -> None:
        self.model = model
        self.uncached_backend = f"{self.library}-{self.name}"

    # -- the particulars ----------------------------------------------------------------
    def check(self, arguments: dict[str, Any]) -> None:
        """Raise :class:`Uncacheable` for a valid call whose result the cache does not keep."""

    def key_form(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The key's view of ``arguments`` (cosmetic ones already removed)."""
        return arguments

    def label_of(self, arguments: dict[str, Any]) -> str:
        raise NotImplementedError

    def to_tree(self, result: Any) -> Any:
        """The result as a storable DataTree (or as it is, which is then not stored)."""
        return result

    # -- the hooks of the cache path -------------------------------------------------------
    def normalize(self, call: Call) -> InferenceRequest:
        try:
            arguments = bind(call)
        except TypeError as error:
            raise PassThrough from error
        model = arguments.get("model")
        if model is not None and model is not self.model:
            raise PassThrough  # another model, passed positionally: not ours
        self.check(arguments)
        kept = {
            name: value
            for name, value in arguments.items()
            if name not in ALWAYS_COSMETIC and name not in self.cosmetic
        }
        try:
            key_parts = self.key_form(kept)
        except TypeError as error:
            raise PassThrough from error  # PyMC rejects the argument in its own words
        return InferenceRequest(self.name, arguments, key_parts, self.label_of(arguments))

    def plan(self, request: InferenceRequest, call: Call) -> Plan:
        return Plan(
            request=request,
            backend_id=self.uncached_backend,
            versions=installed_versions("pymc", "pytensor", *self.libraries),
            payload=call.function,
        )

    def run(self, plan: Plan, quiet: bool) -> Any:
        return self.to_tree(plan.payload(**plan.request.arguments))

    def run_uncached(self, call: Call, request: Any) -> Any:
        return call.run_as_given()


class OrderedGroupsCall(InferenceCall):
    """A call whose InferenceData is stored, and returned, with its groups in the order the
    library gave them (ArviZ would otherwise put its own known groups first)."""

    def to_tree(self, result: Any) -> Any:
        return ordered_tree(result)

    def result(self, tree: Any) -> Any:
        return ordered_result(tree)


def uncacheable_unless(condition: bool, reason: str) -> None:
    """Raise :class:`Uncacheable` with ``reason`` when ``condition`` is false."""
    if not condition:
        raise Uncacheable(reason)


def ordered_tree(result: Any) -> Any:
    """``result`` as a tree that remembers its groups' order (in a root attribute)."""
    tree = as_tree(result)
    if not isinstance(tree, xr.DataTree) or tree.variables:
        return tree
    tree = tree.copy(deep=False)
    tree.attrs = {**tree.attrs, GROUP_ORDER: json.dumps(list(tree.children))}
    return tree


def ordered_result(tree: Any) -> Any:
    """An :func:`ordered_tree` as the installed PyMC returns results, its groups in order."""
    if not isinstance(tree, xr.DataTree) or GROUP_ORDER not in tree.attrs:
        return as_pymc_result(tree)
    order = json.loads(tree.attrs[GROUP_ORDER])
    tree = tree.copy(deep=False)
    tree.attrs = {name: value for name, value in tree.attrs.items() if name != GROUP_ORDER}
    return as_pymc_result_in_order(tree, order)


def point_tree(values: Mapping[str, Any], **attrs: Any) -> xr.DataTree:
    """Named arrays as a tree: variables ``value_<i>`` with their names in attributes.

    Names are kept as attributes, never as variable or dimension names, so any name a model can
    hold (slashes, dots, spaces) is stored; order, dtypes and shapes come back as they were.
    """
    variables = {}
    for index, (name, value) in enumerate(values.items()):
        array = np.asarray(value)
        dims = [f"value_{index}_dim_{axis}" for axis in range(array.ndim)]
        variables[f"value_{index}"] = xr.Variable(dims, array, attrs={"name": str(name)})
    dataset = xr.Dataset(variables, attrs={"count": len(variables), **attrs})
    return xr.DataTree(dataset=dataset)


def tree_points(tree: xr.DataTree) -> dict[str, np.ndarray]:
    """The arrays of a :func:`point_tree`, by name, in stored order (writable copies)."""
    dataset = tree.to_dataset()
    count = int(dataset.attrs["count"])
    values: dict[str, np.ndarray] = {}
    for index in range(count):
        variable = dataset[f"value_{index}"]
        values[str(variable.attrs["name"])] = np.array(variable.values)
    return values
