"""The NumPyro/JAX backend: NUTS from a compiled runner reused across calls.

Importing this package imports no JAX (``plan`` and ``support`` are asked on every call)."""
