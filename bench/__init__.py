"""Benchmarks: each ``bench/bench_<name>.py`` has ``main(argv)`` and prints its figures."""
