"""SV-20 and the root sampling rule of services.md §8.2."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from ttt.telemetry.tracing import CRITICAL_ROOTS, NOISY_ROOTS, make_tracer_provider, trace_id_sampled


def _provider(rate: float) -> tuple[InMemorySpanExporter, object]:
    exporter = InMemorySpanExporter()
    provider = make_tracer_provider(
        "test", otlp_endpoint=None, sampling_rate=rate, processor=SimpleSpanProcessor(exporter)
    )
    return exporter, provider


def test_sv20_dropped_noisy_root_exports_no_children_and_critical_root_always_exported() -> None:
    exporter, provider = _provider(0.0)
    tracer = provider.get_tracer("t")  # type: ignore[attr-defined]
    with tracer.start_as_current_span("providence.step_shard"), tracer.start_as_current_span("child"):
        pass
    assert exporter.get_finished_spans() == ()
    with tracer.start_as_current_span("reconcile.cycle"), tracer.start_as_current_span("reconcile.symbol"):
        pass
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == ["reconcile.cycle", "reconcile.symbol"]


def test_every_critical_root_sampled_and_every_noisy_root_dropped_at_rate_zero() -> None:
    exporter, provider = _provider(0.0)
    tracer = provider.get_tracer("t")  # type: ignore[attr-defined]
    for name in sorted(CRITICAL_ROOTS | NOISY_ROOTS | {"some.other.root"}):
        with tracer.start_as_current_span(name):
            pass
    exported = {s.name for s in exporter.get_finished_spans()}
    assert exported == set(CRITICAL_ROOTS) | {"some.other.root"}


def test_noisy_roots_follow_trace_id_ratio_and_children_follow_parent() -> None:
    exporter, provider = _provider(0.25)
    tracer = provider.get_tracer("t")  # type: ignore[attr-defined]
    kept = 0
    for _ in range(400):
        with tracer.start_as_current_span("feed.poll") as root:
            tid = root.get_span_context().trace_id
            with tracer.start_as_current_span("feed.publish"):
                pass
        # the log-sampling helper makes exactly the sampler's decision
        assert trace_id_sampled(tid, 0.25) == root.get_span_context().trace_flags.sampled
        kept += int(root.get_span_context().trace_flags.sampled)
    spans = exporter.get_finished_spans()
    assert len(spans) == 2 * kept
    assert 40 < kept < 160  # 100 expected; a broken ratio (0 or 1) fails
    bound = TraceIdRatioBased.get_bound_for_rate(0.25)
    assert all(s.context.trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < bound for s in spans)


def test_no_endpoint_means_no_export_processor() -> None:
    provider = make_tracer_provider("test", otlp_endpoint=None, sampling_rate=1.0)
    assert provider._active_span_processor._span_processors == ()  # type: ignore[attr-defined]


def test_disable_env_turns_export_off_even_with_endpoint() -> None:
    provider = make_tracer_provider(
        "test",
        otlp_endpoint="http://127.0.0.1:9/v1/traces",
        sampling_rate=1.0,
        environ={"DISABLE_OTEL_EXPORTER": "true"},
    )
    assert provider._active_span_processor._span_processors == ()  # type: ignore[attr-defined]
