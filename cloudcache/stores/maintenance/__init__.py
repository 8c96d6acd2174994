"""A file cache's entries for listing, checking, copying and pruning (the command line's)."""
