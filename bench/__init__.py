"""hemolab benchmarks: problem definitions, independent references, peers and the runner.

See ``/work/shared/BENCHMARKS.md`` (P1-P4) for the problems, the timing protocol and the
targets. Nothing in this package imports hemolab except :mod:`bench.hemolab_runner`.
"""
