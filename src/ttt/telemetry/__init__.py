"""Metrics, tracing and sampled structured logging (services.md §8)."""

from ttt.telemetry.logs import log_context, noisy_task, setup_logging
from ttt.telemetry.metrics import DbGaugeCollector, Metrics, exposition
from ttt.telemetry.tracing import make_tracer_provider, tracer

__all__ = [
    "DbGaugeCollector",
    "Metrics",
    "exposition",
    "log_context",
    "make_tracer_provider",
    "noisy_task",
    "setup_logging",
    "tracer",
]
