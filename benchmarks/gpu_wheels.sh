#!/usr/bin/env bash
# Download the wheels the GPU check needs on the lent GPU machine (no network there) into .whl/
# (ignored by git). That machine's Python 3.12 image has JAX with CUDA, NumPyro, xarray, h5py,
# fsspec, numba, matplotlib, typer/click and rich, but not PyMC, PyTensor, ArviZ, netCDF4 or
# h5netcdf; scipy is carried because better-optimize (a PyMC dependency) needs scipy >= 1.18.
# The versions are the PyMC 6 environment's (.venv); about 51 MB in all.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
versions() {  # NAME...: NAME==VERSION as installed in .venv
    .venv/bin/python - "$@" <<'PY'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
PY
}
# shellcheck disable=SC2046
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl \
    $(versions pymc pytensor arviz arviz-base arviz-stats arviz-plots xarray-einstats \
        better-optimize h5netcdf netcdf4 cftime cachetools scipy)
du -sh .whl
