"""What the installed PyMC's own nutpie path does differently (PyMC 5 / nutpie 0.16.8 or PyMC 6).

``pm.sample(nuts_sampler="nutpie")`` on PyMC 6 seeds nutpie with the first per-chain seed, shows
PyMC's progress bar, honours ``discard_tuned_samples`` and ``include_transformed`` and patches
the DataTree with ``patch_nutpie_idata``. On PyMC 5 it seeds with ``_get_seeds_per_chain(seed,
1)`` (:func:`~cloudcache.compat.pymc.forward_seed`), shows nutpie's own bar, always keeps the
warm-up groups and the unconstrained values (nutpie's defaults) and adds
``constant_data``/``observed_data`` to nutpie's InferenceData itself.
:mod:`cloudcache.backends.nutpie.backend` calls these so its result is shaped as that PyMC's.
:func:`data_names` reads a compiled model's attributes, which changed within nutpie 0.16.
:func:`import_nutpie` imports nutpie without ArviZ's statistics and plots.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import xarray as xr

from cloudcache.compat.pymc import RETURNS_INFERENCEDATA, as_tree, chain_seeds, forward_seed
from cloudcache.util.versions import installed_versions

if TYPE_CHECKING:
    import pymc as pm


_IMPORT_LOCK = threading.Lock()

#: What nutpie's ``sample`` module reads of ``arviz`` (ArviZ 1.x takes both from arviz_base).
ARVIZ_NAMES_NUTPIE_READS: tuple[str, ...] = ("from_dict", "dict_to_dataset")


def _arviz_stand_in() -> ModuleType:
    """A module ``arviz`` with arviz_base's functions; any other name comes from the real
    ArviZ, imported on first use (so the stand-in behaves as ArviZ for whoever holds it)."""
    import arviz_base

    stand_in = ModuleType("arviz")
    for name in ARVIZ_NAMES_NUTPIE_READS:
        setattr(stand_in, name, getattr(arviz_base, name))

    def real_attribute(name: str) -> Any:
        if sys.modules.get("arviz") is stand_in:
            del sys.modules["arviz"]
        return getattr(importlib.import_module("arviz"), name)

    stand_in.__getattr__ = real_attribute  # type: ignore[method-assign]
    return stand_in


def import_nutpie() -> ModuleType:
    """``import nutpie``, without importing ArviZ itself where that is safe.

    nutpie's ``sample`` module imports ``arviz`` for ``from_dict`` and ``dict_to_dataset``, and
    ArviZ 1.x imports arviz_stats (SciPy's ``stats``) and arviz_plots (matplotlib) with it: 1.5
    of the 2 CPU-s nutpie's import costs a fresh process. With ArviZ 1.x installed and not yet
    imported, nutpie is imported against a stand-in ``arviz`` (arviz_base's own functions,
    which ArviZ 1.x re-exports; any other name from the real ArviZ on first use); afterwards
    ``import arviz`` gives the real module as always.
    """
    if "nutpie" in sys.modules or "arviz" in sys.modules:
        return importlib.import_module("nutpie")
    version = installed_versions("arviz")["arviz"]
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) < 1:
        return importlib.import_module("nutpie")
    with _IMPORT_LOCK:
        stand_in = _arviz_stand_in()
        sys.modules["arviz"] = stand_in
        try:
            return importlib.import_module("nutpie")
        finally:
            if sys.modules.get("arviz") is stand_in:
                del sys.modules["arviz"]


class NutpieRun(Protocol):
    """What these functions read of a nutpie run's plan."""

    chains: int
    draws: int
    save_warmup: bool
    include_transformed: bool
    progressbar: Any
    progressbar_theme: Any


def nutpie_seed(random_seed: Any, chains: int) -> int:
    """The seed PyMC's nutpie path hands ``nutpie.sample`` for ``random_seed``."""
    if RETURNS_INFERENCEDATA:
        return forward_seed(random_seed)
    return chain_seeds(random_seed, chains)[0]


def sample_options(plan: NutpieRun) -> dict[str, Any]:
    """Keywords of ``nutpie.sample`` that differ by PyMC: the warm-up and unconstrained draws."""
    if RETURNS_INFERENCEDATA:
        return {}  # PyMC 5 passes neither: nutpie keeps both
    return {"save_warmup": plan.save_warmup, "store_unconstrained": plan.include_transformed}


def progress(plan: NutpieRun) -> tuple[contextlib.AbstractContextManager[Any], dict[str, Any]]:
    """The progress bar around ``nutpie.sample`` and the keywords that feed it."""
    if RETURNS_INFERENCEDATA:  # PyMC 5 shows nutpie's own bar
        return contextlib.nullcontext(), {"progress_bar": bool(plan.progressbar)}
    from pymc.progress_bar.progress import NutpieProgressBarManager

    bar = NutpieProgressBarManager(
        chains=plan.chains,
        draws=plan.draws,
        progressbar=plan.progressbar,
        progressbar_theme=plan.progressbar_theme,
    )
    return bar, {"progress_bar": False, "progress_callback": bar.update}


def data_names(compiled: Any) -> set[str]:
    """Names of the shared variables a compiled nutpie model reads (``with_data`` keywords)."""
    by_variable = getattr(compiled, "shared_var_keys", None)  # nutpie 0.16.11: variable -> key
    if by_variable is not None:
        return {var.name for var in by_variable}
    return set(compiled.shared_data)  # nutpie 0.16.8: keyed by name


def finished_result(result: Any, model: pm.Model, sampling_time: float, tune: int) -> xr.DataTree:
    """nutpie's result with PyMC's additions (data groups, posterior attributes), as a tree."""
    if not RETURNS_INFERENCEDATA:
        from pymc.backends.arviz import patch_nutpie_idata

        patch_nutpie_idata(result, model, sampling_time=sampling_time)
        return result
    return as_tree(_with_pymc5_groups(result, model, sampling_time, tune))


def _with_pymc5_groups(idata: Any, model: pm.Model, sampling_time: float, tune: int) -> Any:
    import nutpie
    import pymc
    from arviz.data.base import make_attrs
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        dict_to_dataset,
        find_constants,
        find_observations,
    )

    coords, dims = coords_and_dims_for_inferencedata(model)

    def data(values: dict[str, Any]) -> xr.Dataset:
        return dict_to_dataset(values, library=pymc, coords=coords, dims=dims, default_dims=[])

    idata.posterior.attrs.update(
        make_attrs({"sampling_time": sampling_time, "tuning_steps": tune}, library=nutpie)
    )
    idata.add_groups(
        {
            "constant_data": data(find_constants(model)),
            "observed_data": data(find_observations(model)),
        },
        coords=coords,
        dims=dims,
    )
    return idata
