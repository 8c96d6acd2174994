"""Every dependency on a PyMC, ArviZ, PyTensor, JAX, nutpie, xarray or pymc-extras version or
private API."""
