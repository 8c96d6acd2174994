"""A backend known by name, library versions and refusal before its sampling module is imported.

A hit needs only the key's backend part (a name and versions) and the backend's cheap refusal
check; importing a sampling module (JAX, NumPyro, nutpie) costs most of a second, so it is
imported on the first miss that samples with it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from cloudcache.util.versions import installed_versions


@functools.cache
def load_backend(module: str, attribute: str) -> Any:
    """One instance per process of the backend class ``module.attribute``."""
    return getattr(importlib.import_module(module), attribute)()


class LazyBackend:
    """Stands in for the backend class ``module.attribute`` until something must be sampled.

    ``libraries``: the packages whose versions enter the key. ``refusal``: a cheap function
    ``(model, request) -> str | None`` living outside the sampling module.
    """

    def __init__(
        self,
        name: str,
        module: str,
        attribute: str,
        libraries: tuple[str, ...],
        refusal: Callable[[Any, Any], str | None],
    ) -> None:
        self.name = name
        self.module = module
        self.attribute = attribute
        self.libraries = libraries
        self.refuse = refusal

    def library_versions(self) -> dict[str, str]:
        return installed_versions(*self.libraries)

    def refusal(self, model: Any, request: Any) -> str | None:
        return self.refuse(model, request)

    def sample(self, model: Any, request: Any, *, device: str, pymc_sample: Any) -> Any:
        backend = load_backend(self.module, self.attribute)
        return backend.sample(model, request, device=device, pymc_sample=pymc_sample)
