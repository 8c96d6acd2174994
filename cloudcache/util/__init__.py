"""Leaf helpers with no knowledge of PyMC: installed versions, JSON-safe values, argument checks."""
