"""Tracing: one tracer provider per process, with the sampling rule of services.md §8.2.

The rule applies to root spans only; children follow their parent, so a dropped noisy root never leaves
orphan children and a critical root is always exported with its whole tree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

CRITICAL_ROOTS = frozenset(
    {
        "reconcile.cycle",
        "gateway.POST /v1/orders",
        "gateway.cancel_open",
        "account.update_balance",
        "take_profit.evaluate",
    }
)
NOISY_ROOTS = frozenset(
    {
        "providence.step_shard",
        "providence.dispatch",
        "market_data.fetch",
        "feed.poll",
        "feed.publish",
        "observer.poll",
    }
)


class RootRuleSampler(Sampler):
    """Critical roots always, noisy roots by trace-id ratio, everything else always."""

    def __init__(self, sampling_rate: float) -> None:
        self._ratio = TraceIdRatioBased(sampling_rate)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if name in NOISY_ROOTS:
            return self._ratio.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)

    def get_description(self) -> str:
        return f"TTTRootRule{{{self._ratio.get_description()}}}"


def make_sampler(sampling_rate: float) -> Sampler:
    return ParentBased(root=RootRuleSampler(sampling_rate))


def trace_id_sampled(trace_id: int, sampling_rate: float) -> bool:
    """The same ratio test the sampler applies, for log sampling without a recording span."""
    bound = TraceIdRatioBased.get_bound_for_rate(sampling_rate)
    return (trace_id & TraceIdRatioBased.TRACE_ID_LIMIT) < bound


def export_disabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("DISABLE_OTEL_EXPORTER", "").strip().lower() in {"1", "true", "yes"}


def make_tracer_provider(
    process: str,
    *,
    otlp_endpoint: str | None,
    sampling_rate: float,
    otlp_headers: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
    processor: SpanProcessor | None = None,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider:
    """Build the provider for one process (`ttt-<process>`).

    Without an endpoint (and no explicit exporter/processor) nothing is exported, but the sampler still
    runs, so log sampling and trace ids behave the same with tracing on or off.
    """
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"ttt-{process}"}),
        sampler=make_sampler(sampling_rate),
    )
    if processor is not None:
        provider.add_span_processor(processor)
        return provider
    if exporter is None and otlp_endpoint and not export_disabled(environ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint, headers=dict(otlp_headers or {}))
    if exporter is not None:
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter, max_queue_size=2048, max_export_batch_size=512, schedule_delay_millis=5000
            )
        )
    return provider


def install_tracer_provider(provider: TracerProvider) -> None:
    trace.set_tracer_provider(provider)


def tracer(name: str = "ttt") -> trace.Tracer:
    return trace.get_tracer(name)


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex when a span is active, for log records."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


__all__ = [
    "CRITICAL_ROOTS",
    "NOISY_ROOTS",
    "RootRuleSampler",
    "current_trace_ids",
    "export_disabled",
    "install_tracer_provider",
    "make_sampler",
    "make_tracer_provider",
    "trace_id_sampled",
    "tracer",
]
