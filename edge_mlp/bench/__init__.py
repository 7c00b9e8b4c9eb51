"""Latency benchmarks: every backend timed interleaved in one process, with roofline figures."""

from .run import TIMED_PRECISIONS, TIMED_TARGETS, BenchJob, run_bench
from .schema import BACKENDS, BENCH_SCHEMA_VERSION, BenchReport, BenchResult, validate

__all__ = [
    "BACKENDS", "BENCH_SCHEMA_VERSION", "BenchJob", "BenchReport", "BenchResult", "TIMED_PRECISIONS",
    "TIMED_TARGETS", "run_bench", "validate",
]
