"""The entry format: file names, the NetCDF file, its header checks and safe opening."""
