"""Every dependency on a PyMC, ArviZ, PyTensor, JAX, nutpie or xarray version or private API."""
