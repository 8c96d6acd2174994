"""Which JAX devices run the chains, and how chains are laid out on them.

CPU: XLA exposes one CPU device unless told otherwise *before its backend initialises*.
:func:`prepare_cpu_devices` (called as the numpyro backend prepares a run) asks for one CPU
device per core through ``jax_num_cpu_devices``, unless the user already chose a count (that
option or ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``) or JAX is already
initialised, in which case the devices JAX has are used as they are. Chains are then split
across CPU devices (each device runs its chains vectorized): benchmarks/bench_numpyro.py
measured this as the fastest layout on 2 cores (docs/benchmarks.md).

The device count cannot be scoped to cloudcache's runs: JAX fixes it for the rest of the
process when its backend starts, so the user's own JAX code sees the same devices afterwards.
``CLOUDCACHE_CPU_DEVICES=off`` leaves JAX's own count alone (one CPU device unless configured);
``CLOUDCACHE_CPU_DEVICES=n`` asks for ``n`` devices instead of one per core.

GPU: all chains run vectorized on one device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Environment variable: the number of CPU devices cloudcache asks JAX for, or an off value.
CPU_DEVICES_ENV = "CLOUDCACHE_CPU_DEVICES"

#: Values of :data:`CPU_DEVICES_ENV` that leave JAX's device count alone.
OFF_VALUES = frozenset({"off", "false", "no", "none"})

_GPU_PLATFORMS = ("cuda", "rocm", "gpu")


def default_cpu_device_count() -> int | None:
    """One CPU device per available core, ``$CLOUDCACHE_CPU_DEVICES``, or None (``off``).

    Raises ``ValueError`` naming the variable for a value that is neither a count nor ``off``.
    """
    configured = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if configured.lower() in OFF_VALUES:
        return None
    if configured:
        try:
            count = int(configured)
        except ValueError:
            count = -1
        if count < 0:
            raise ValueError(
                f"{CPU_DEVICES_ENV} must be a number of CPU devices (such as 4) or 'off' (leave "
                f"JAX's own device count alone); got {configured!r}"
            )
        return max(1, count)
    return available_cores()


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        cores = os.cpu_count() or 1
    return max(1, cores)


def prepare_cpu_devices() -> bool:
    """Ask JAX for :func:`default_cpu_device_count` CPU devices if it is still possible.

    Returns True when the setting was applied. Never overrides a count the user chose, and
    changes nothing with ``CLOUDCACHE_CPU_DEVICES=off``.
    """
    count = default_cpu_device_count()  # a bad value is reported even where it is not needed
    import jax

    from cloudcache.compat.jax import backends_initialized

    if count is None or backends_initialized():
        return False
    if jax.config.jax_num_cpu_devices >= 0:
        return False
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    jax.config.update("jax_num_cpu_devices", count)
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
