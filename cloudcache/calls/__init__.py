"""The one cache path and its call kinds: ``pm.sample`` and the predictive functions."""
