"""The demo (``python -m cloudcache.demo``) and the models it and the benchmarks sample."""
