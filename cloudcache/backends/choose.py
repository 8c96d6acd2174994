"""``backend="auto"``: which sampler a miss runs on, from the device and the model's size.

The rule (deterministic; calibrated in ``benchmarks/bench_backends.py``, see docs/backends.md):

1. GPU (``device="gpu"``, or ``"auto"`` on a machine with a CUDA JAX plugin and an NVIDIA
   device): NumPyro, then PyMC (nutpie runs on CPUs only).
2. CPU, nutpie not installed: NumPyro, then PyMC.
3. CPU, nutpie's compiled model kept on disk (:func:`nutpie_persists`: PyTensor's numba
   cache on, a nutpie whose callbacks cloudcache caches): nutpie, then NumPyro, then PyMC, for
   every size (its steps are cheaper, and a fresh process loads its compiled model).
4. CPU otherwise, at least :data:`NUTPIE_MIN_OBSERVATIONS` observed values: nutpie, then
   NumPyro, then PyMC (XLA's CPU gradient of index gathers is a slow scatter-add; PyTensor's
   numba code wins once the log density dominates each step).
5. CPU otherwise, smaller models: NumPyro, then nutpie, then PyMC (nutpie compiles again in
   every process, JAX's persistent cache makes a fresh process's first miss cheap).

Everything here is cheap and imports neither JAX nor nutpie nor numba: it runs on every call,
hits included, before the key is computed.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pytensor.compile import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import graph_inputs

from cloudcache.compat.pytensor import is_instance

if TYPE_CHECKING:
    import pymc as pm

#: On a CPU, models with at least this many observed values sample faster with nutpie.
NUTPIE_MIN_OBSERVATIONS = 5_000

#: The oldest nutpie whose compiled model cloudcache rebuilds from numba's disk cache
#: (:mod:`cloudcache.compat.nutpie_disk_cache`).
NUTPIE_DISK_CACHE_SINCE: tuple[int, ...] = (0, 16, 11)

#: JAX plugins that give JAX a CUDA device.
CUDA_PLUGINS: tuple[str, ...] = ("jax_cuda12_plugin", "jax_cuda13_plugin")


@dataclass(frozen=True)
class AutoChoice:
    """Backends in order of preference, and why the first one (a few words)."""

    order: tuple[str, ...]
    why: str


def _size(var: Variable) -> int:
    """Number of elements of an observed value, read without evaluating any graph."""
    if is_instance(var, Constant):
        return int(np.size(var.data))
    if is_instance(var, SharedVariable):
        return int(np.size(var.get_value(borrow=True)))
    shape = getattr(var.type, "shape", None)
    if shape is not None and all(length is not None for length in shape):
        return math.prod(shape)
    return max((_size(v) for v in graph_inputs([var]) if v is not var), default=0)


def observation_count(model: pm.Model) -> int:
    """Total number of observed values in ``model``."""
    return sum(_size(model.rvs_to_values[rv]) for rv in model.observed_RVs)


def short_count(count: int) -> str:
    """``100000`` -> ``"1.0e5"`` (two significant figures); below 1000 as is: ``"919"``."""
    if count < 1000:
        return str(count)
    mantissa, exponent = f"{count:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@functools.cache
def gpu_present() -> bool:
    """Whether JAX would find a CUDA device here (checked once per process, without JAX)."""
    has_plugin = any(find_spec(plugin) is not None for plugin in CUDA_PLUGINS)
    return has_plugin and Path("/dev/nvidiactl").exists()


def sampling_device(backend_id: str, device: str) -> str:
    """The device a miss of ``backend_id`` runs on in this process: ``"gpu"`` or ``"cpu"``.

    JAX samplers (NumPyro, PyMC's JAX samplers) resolve ``"auto"`` to a GPU when one is present;
    nutpie and PyMC's own sampler always run on the CPU.
    """
    if backend_id == "numpyro" or backend_id.startswith("pymc:"):
        return "gpu" if device == "gpu" or (device == "auto" and gpu_present()) else "cpu"
    return "cpu"


@functools.cache
def nutpie_installed() -> bool:
    """Whether nutpie can be imported here (checked once per process, without importing it)."""
    return find_spec("nutpie") is not None


def _release(version: str) -> tuple[int, ...]:
    """``"0.16.11"`` -> ``(0, 16, 11)`` (a pre-release suffix is dropped)."""
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


@functools.cache
def nutpie_persists() -> bool:
    """Whether a new process loads nutpie's compiled models from disk instead of compiling
    them: PyTensor's numba cache is on and nutpie is recent enough (read from the installed
    versions and PyTensor's configuration, once per process, without importing numba)."""
    from pytensor import config

    from cloudcache.util.versions import installed_versions

    if not getattr(config, "numba__cache", False):
        return False
    version = installed_versions("nutpie")["nutpie"]
    return version != "missing" and _release(version) >= NUTPIE_DISK_CACHE_SINCE


def auto_choice(model: pm.Model, device: str) -> AutoChoice:
    """The order of preference of ``backend="auto"`` for ``model`` on ``device``."""
    if device == "gpu" or (device == "auto" and gpu_present()):
        return AutoChoice(("numpyro", "pymc"), "GPU")
    if not nutpie_installed():
        return AutoChoice(("numpyro", "pymc"), "CPU, nutpie not installed")
    observations = observation_count(model)
    size = f"CPU, {short_count(observations)} observations"
    if nutpie_persists() or observations >= NUTPIE_MIN_OBSERVATIONS:
        return AutoChoice(("nutpie", "numpyro", "pymc"), size)
    return AutoChoice(("numpyro", "nutpie", "pymc"), size)
