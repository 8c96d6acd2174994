"""Which JAX devices run the chains, and how chains are laid out on them.

CPU: XLA exposes one CPU device unless told otherwise *before its backend initialises*.
:func:`prepare_cpu_devices` (called as the numpyro backend prepares a run) asks for one CPU
device per core through ``jax_num_cpu_devices``, unless the user already chose a count (that
option or ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``) or JAX is already
initialised, in which case the devices JAX has are used as they are. Chains are then split
across CPU devices (each device runs its chains vectorized): benchmarks/bench_numpyro.py
measured this as the fastest layout on 2 cores (docs/benchmarks.md).

GPU: all chains run vectorized on one device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Environment variable overriding the number of CPU devices cloudcache asks JAX for.
CPU_DEVICES_ENV = "CLOUDCACHE_CPU_DEVICES"

_GPU_PLATFORMS = ("cuda", "rocm", "gpu")


def default_cpu_device_count() -> int:
    """One CPU device per available core (or ``$CLOUDCACHE_CPU_DEVICES``)."""
    configured = os.environ.get(CPU_DEVICES_ENV)
    if configured:
        return max(1, int(configured))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        cores = os.cpu_count() or 1
    return max(1, cores)


def prepare_cpu_devices() -> bool:
    """Ask JAX for :func:`default_cpu_device_count` CPU devices if it is still possible.

    Returns True when the setting was applied. Never overrides a count the user chose.
    """
    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return False
    if jax.config.jax_num_cpu_devices >= 0:
        return False
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    jax.config.update("jax_num_cpu_devices", default_cpu_device_count())
    return True


@dataclass(frozen=True)
class ChainLayout:
    """Chains split evenly over ``devices``; each device runs its share vectorized
    (``vmap``) or one after the other (``lax.map``)."""

    platform: str
    devices: tuple[object, ...]
    vectorized: bool

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def describe(self) -> str:
        how = "vectorized" if self.vectorized else "sequential"
        return f"{self.platform}x{self.n_devices}-{how}"


def _gpu_devices() -> list[object]:
    import jax

    for platform in _GPU_PLATFORMS:
        try:
            devices = jax.devices(platform)
        except RuntimeError:
            continue
        if devices:
            return list(devices)
    return []


def resolve_devices(device: str) -> tuple[str, list[object]]:
    """``("gpu" | "cpu", devices)`` for ``device`` in ``"auto" | "cpu" | "gpu"``."""
    import jax

    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu'; got {device!r}")
    if device in ("auto", "gpu"):
        gpus = _gpu_devices()
        if gpus:
            return "gpu", gpus
        if device == "gpu":
            raise RuntimeError(
                "device='gpu' but JAX finds no GPU (jax.devices() lists "
                f"{[d.platform for d in jax.devices()]}). Install a CUDA/ROCm build of jaxlib "
                "(e.g. `pip install -U 'jax[cuda12]'`) or use device='cpu' / 'auto'."
            )
    return "cpu", list(jax.devices("cpu"))


def chain_layout(device: str, chains: int, chain_method: str | None = None) -> ChainLayout:
    """Pick the devices for ``chains`` chains.

    GPU, or ``chain_method="vectorized"``: one device, all chains vectorized. CPU (default or
    ``chain_method="parallel"``): the largest number of devices, at most the number available,
    that divides ``chains`` evenly; each device runs its chains one after the other.
    """
    platform, devices = resolve_devices(device)
    if platform == "gpu" or chain_method == "vectorized":
        return ChainLayout(platform, (devices[0],), vectorized=True)
    usable = 1
    for n in range(min(len(devices), chains), 0, -1):
        if chains % n == 0:
            usable = n
            break
    return ChainLayout(platform, tuple(devices[:usable]), vectorized=False)
