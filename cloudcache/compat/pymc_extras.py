"""pymc-extras' pathfinder settings as each release takes them (the optional ``extras`` extra).

pymc-extras 0.10 and 0.11 take pathfinder's L-BFGS settings as arguments of ``fit_pathfinder``
(``maxcor``, ``maxiter``, ``ftol``, ``gtol``, ``maxls``, ``epsilon``); 0.12 (the release for
PyMC 6.4) takes them as one ``LBFGSConfig``, a frozen dataclass of the same six settings whose
``None`` means its defaults. :func:`lbfgs_settings` turns that object into the settings by name,
so the key holds numbers rather than an object. pymc-extras is imported only here and only when
a call of it is keyed (the user imported it already).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def lbfgs_settings(config: Any) -> Any:
    """The settings of pathfinder's ``lbfgs_config`` by name (``None``: the defaults).

    Anything but an ``LBFGSConfig`` itself (a subclass may behave differently) is returned as it
    is, for the key to fingerprint or refuse.
    """
    from pymc_extras.inference.pathfinder.lbfgs import LBFGSConfig

    if config is None:
        config = LBFGSConfig()
    if type(config) is not LBFGSConfig:
        return config
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
