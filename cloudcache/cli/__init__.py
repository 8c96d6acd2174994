"""The ``cloudcache`` command line (``cloudcache = "cloudcache.cli:main"``)."""

from cloudcache.cli.commands import app, main

__all__ = ["app", "main"]
