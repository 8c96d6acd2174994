"""What every sampling backend is: the one base class, with the defaults all backends share.

A backend turns a model and a :class:`~cloudcache.backends.request.SampleRequest` into a
DataTree and knows nothing of caching. It says who it is (:attr:`Backend.name`), which
libraries' versions enter the key of what it samples (:attr:`Backend.libraries`) and, cheaply
and before any key is computed, why it cannot sample a call (:meth:`Backend.refusal`, written
once here from three narrow hooks: :meth:`Backend.plan`, :attr:`Backend.samples_discrete` and
:meth:`Backend.model_refusal`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cloudcache.errors import BackendRefused
from cloudcache.util.versions import installed_versions

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from cloudcache.backends.request import SampleRequest


def refuse_pymc_only_arguments(arguments: Mapping[str, Any], backend: str) -> None:
    """Raise :class:`BackendRefused` for what only PyMC's own sampler honours (``step=``,
    ``callback=``, ``trace=``, ``return_inferencedata=False``) or another ``nuts_sampler=``."""
    for name in ("step", "callback", "trace"):
        if arguments.get(name) is not None:
            raise BackendRefused(f"`{name}=` is only supported by PyMC's own sampler")
    if arguments.get("return_inferencedata") is False:
        raise BackendRefused("`return_inferencedata=False` needs PyMC's own sampler")
    if arguments.get("nuts_sampler") not in (None, backend):
        sampler = arguments["nuts_sampler"]
        raise BackendRefused(f"`nuts_sampler={sampler!r}` was asked for explicitly")


class Backend:
    """A sampling backend. Subclasses set :attr:`name` and implement :meth:`sample`."""

    #: The name ``cloud(backend=...)`` and the key use.
    name: str = ""
    #: Libraries whose versions (major.minor) enter the key of what this backend samples.
    libraries: tuple[str, ...] = ("pymc", "pytensor")
    #: Whether the backend samples models with discrete free variables.
    samples_discrete: bool = True
    #: Whether a finished run can be extended by more draws (it keeps its final state).
    extendable: bool = False

    def library_versions(self) -> dict[str, str]:
        """Exact versions of :attr:`libraries` (their major.minor enter the key)."""
        return installed_versions(*self.libraries)

    def plan(self, request: SampleRequest) -> Any:
        """What the backend would do for ``request``; raises :class:`BackendRefused` (one-line
        reason) for a setting it cannot honour, ``TypeError``/``ValueError`` for a bad one."""
        return None

    def model_refusal(self, model: pm.Model) -> str | None:
        """Why the backend cannot sample ``model`` at all, when that is known cheaply."""
        return None

    def refusal(self, model: pm.Model, request: SampleRequest) -> str | None:
        """Why this backend cannot sample this call (``None``: it can). Cheap: never samples.

        Asked *before* the key is computed, on every call (hits included), so the key holds
        the backend that really samples. A bad argument is no refusal: sampling reports it in
        the backend's own words.
        """
        try:
            self.plan(request)
        except BackendRefused as reason:
            return str(reason)
        except (TypeError, ValueError):
            return None
        discrete = [] if self.samples_discrete else model.discrete_value_vars
        if discrete:
            return f"the model has discrete free variables ({', '.join(map(str, discrete))})"
        return self.model_refusal(model)

    def sample(
        self,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
    ) -> xr.DataTree:
        """Sample ``model`` as ``request`` asks; ``pymc_sample`` is PyMC's unpatched sampler.

        Raises :class:`BackendRefused` (before any draw) when it finds only now that it cannot.
        """
        raise NotImplementedError(f"{type(self).__name__} does not sample")
