"""A backend known by name, library versions and refusal before its sampling module is imported.

A hit needs only the key's backend part (a name and versions) and the backend's cheap refusal
check; importing a sampling module (JAX, NumPyro, nutpie) costs most of a second, so it is
imported on the first miss that samples with it.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any

from cloudcache.backends.base import Backend


@functools.cache
def load_backend(module: str, attribute: str) -> Backend:
    """One instance per process of the backend class ``module.attribute``.

    NumPyro and nutpie import ``tqdm.auto``, which in a Jupyter kernel without ipywidgets warns
    "IProgress not found" once per process; cloudcache never shows their notebook progress
    bars, so that warning is noise of ours and is silenced for the import.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        return getattr(importlib.import_module(module), attribute)()


class LazyBackend(Backend):
    """Stands in for the backend class ``module.attribute`` until something must be sampled.

    ``planner``: the backend's import-light part (its name, libraries, plan and refusal), which
    the real class extends with :meth:`sample`.
    """

    def __init__(self, planner: Backend, module: str, attribute: str) -> None:
        self.planner = planner
        self.name = planner.name
        self.libraries = planner.libraries
        self.extendable = planner.extendable
        self.module = module
        self.attribute = attribute

    def library_versions(self) -> dict[str, str]:
        """The planner's: a backend may add more than its libraries (the NumPyro runner's
        revision), and the key must hold exactly what the real backend names."""
        return self.planner.library_versions()

    def refusal(self, model: Any, request: Any) -> str | None:
        return self.planner.refusal(model, request)

    def sample(self, model: Any, request: Any, *, device: str, pymc_sample: Any) -> Any:
        backend = load_backend(self.module, self.attribute)
        return backend.sample(model, request, device=device, pymc_sample=pymc_sample)
