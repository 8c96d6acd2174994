"""The nutpie backend: nutpie's NUTS over a numba-compiled model kept per structure.

Importing this package imports neither nutpie nor numba."""
