"""``python -m cloudcache``: the command line."""

from cloudcache.cli import main

main()
