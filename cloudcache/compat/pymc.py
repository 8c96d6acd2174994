"""Which PyMC is installed, and the one seam where its result type differs.

PyMC 6 returns an ``xarray.DataTree`` from ``pm.sample`` and the predictive functions; PyMC 5
returns an ArviZ 0.x ``InferenceData``. Inside cloudcache every result is a DataTree (stores,
the audit, the backends' output, the cache path); :func:`as_tree` turns what PyMC's own
functions return into one, and :func:`as_pymc_result` turns a tree into what the installed
PyMC's functions return, just before the caller gets it. Both share the arrays (no copy).
"""

from __future__ import annotations

from typing import Any

import pymc
import xarray as xr

#: The major version of the installed PyMC (5 or 6).
PYMC_MAJOR: int = int(pymc.__version__.split(".", 1)[0])

#: Whether ``pm.sample`` returns ArviZ 0.x ``InferenceData`` (PyMC 5) rather than a DataTree.
RETURNS_INFERENCEDATA: bool = PYMC_MAJOR < 6

#: Keyword arguments ``pm.sample`` still accepts under an old name (PyMC 5: ``start=`` is
#: ``initvals=``, with a FutureWarning), old name -> the argument it means.
SAMPLE_RENAMED_ARGUMENTS: dict[str, str] = {"start": "initvals"} if PYMC_MAJOR < 6 else {}

#: Deprecated aliases of the predictive functions' arguments (PyMC 5's prior predictive takes
#: ``samples=`` for ``draws=``; when given, it wins), alias -> the argument it sets.
PREDICTIVE_RENAMED_ARGUMENTS: dict[str, str] = {"samples": "draws"} if PYMC_MAJOR < 6 else {}

#: Whether one string passed where the predictive functions take names (``var_names="y"``)
#: means that one name (PyMC 6). PyMC 5 iterates it, so it names its characters.
ONE_STRING_IS_ONE_NAME: bool = PYMC_MAJOR >= 6

#: The trace type ``sample_posterior_predictive`` reads groups from (and extends in place).
TRACE_TREE_NAME: str = "InferenceData" if RETURNS_INFERENCEDATA else "DataTree"


def is_result(value: Any) -> bool:
    """Whether ``value`` is a sampling result of either shape (DataTree or InferenceData)."""
    return isinstance(value, xr.DataTree) or is_inferencedata(value)


def is_pymc_result(value: Any) -> bool:
    """Whether ``value`` has the type the installed PyMC returns (and reads a trace from)."""
    if RETURNS_INFERENCEDATA:
        return is_inferencedata(value)
    return isinstance(value, xr.DataTree)


def result_groups(result: Any) -> dict[str, Any]:
    """The groups of a result (DataTree children or InferenceData datasets) by name."""
    if is_inferencedata(result):
        return {name: result[name] for name in result.groups()}
    return dict(result.children)


def extend_inferencedata(target: Any, addition: Any, *, predictions: bool) -> Any:
    """Add ``addition``'s groups to the InferenceData ``target`` in place, as PyMC 5 does.

    PyMC 5's ``extend_inferencedata=True`` keeps the groups ``target`` already has
    (``InferenceData.extend``), or for ``predictions=True`` concatenates the new groups into it
    (``arviz.concat(dim=None)``, which refuses groups it already has).
    """
    from arviz import concat

    if predictions:
        concat([target, addition], dim=None, inplace=True)
    else:
        target.extend(addition)
    return target


def as_tree(result: Any) -> Any:
    """``result`` as a DataTree (an ``InferenceData`` converted, arrays shared); others as given."""
    if is_inferencedata(result):
        tree = xr.DataTree.from_dict({f"/{name}": result[name] for name in result.groups()})
        tree.attrs = dict(result.attrs)
        return tree
    return result


def as_pymc_result(tree: Any) -> Any:
    """``tree`` as the installed PyMC returns it: ``InferenceData`` on PyMC 5 (arrays shared).

    Only a tree of groups is a PyMC result: one with data at its root (another call kind's
    result) is returned as it is.
    """
    if RETURNS_INFERENCEDATA and isinstance(tree, xr.DataTree) and not tree.variables:
        from arviz import InferenceData

        groups = {name: node.to_dataset(inherit=False) for name, node in tree.children.items()}
        return InferenceData(attrs=dict(tree.attrs), **groups)
    return tree


def is_inferencedata(value: Any) -> bool:
    """Whether ``value`` is PyMC 5's result type (always ``False`` on PyMC 6)."""
    if not RETURNS_INFERENCEDATA:
        return False
    from arviz import InferenceData

    return isinstance(value, InferenceData)
