"""Structured logging: fields, trace ids, sampling consistent with traces, secret masking (§8.3)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ttt.telemetry.logs import log_context, noisy_task, setup_logging
from ttt.telemetry.tracing import make_tracer_provider


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    handler = setup_logging(
        process="test", fmt="json", sampling_rate=0.0, secrets=["s3cr3t-token-value"], stream=buf
    )
    yield buf
    logging.getLogger().removeHandler(handler)


def _records(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_record_carries_required_fields_and_context(stream: io.StringIO) -> None:
    with log_context(cycle_id="sched:1", symbol="BTC/USDC:USDC"):
        logging.getLogger("ttt.x").warning("hello %s", "world")
    (rec,) = _records(stream)
    assert rec["message"] == "hello world"
    assert rec["level"] == "WARNING" and rec["logger"] == "ttt.x" and rec["process"] == "test"
    assert rec["cycle_id"] == "sched:1" and rec["symbol"] == "BTC/USDC:USDC"
    assert str(rec["ts"]).endswith("+00:00")


def test_secret_values_are_masked(stream: io.StringIO) -> None:
    logging.getLogger("ttt.x").error("token is %s", "s3cr3t-token-value")
    out = stream.getvalue()
    assert "s3cr3t-token-value" not in out and "***" in out


def test_noisy_task_info_follows_trace_decision_and_warnings_always_kept(stream: io.StringIO) -> None:
    exporter = InMemorySpanExporter()
    provider = make_tracer_provider(
        "t", otlp_endpoint=None, sampling_rate=0.0, processor=SimpleSpanProcessor(exporter)
    )
    tracer = provider.get_tracer("t")
    log = logging.getLogger("ttt.noisy")
    with noisy_task("providence.step_shard"), tracer.start_as_current_span("providence.step_shard"):
        log.info("dropped with its trace")
        log.warning("always kept")
    with tracer.start_as_current_span("reconcile.cycle"):
        log.info("not a noisy task: kept")
    with noisy_task("providence.step_shard"), tracer.start_as_current_span("reconcile.cycle"):
        log.info("noisy scope but sampled trace: kept")
    messages = [r["message"] for r in _records(stream)]
    assert messages == ["always kept", "not a noisy task: kept", "noisy scope but sampled trace: kept"]
    rec = _records(stream)[1]
    assert len(str(rec["trace_id"])) == 32 and len(str(rec["span_id"])) == 16


def test_text_format_is_key_value() -> None:
    buf = io.StringIO()
    handler = setup_logging(process="p", fmt="text", stream=buf)
    try:
        with log_context(symbol="ETH/USDC:USDC"):
            logging.getLogger("ttt.t").warning("msg with space")
    finally:
        logging.getLogger().removeHandler(handler)
    line = buf.getvalue().strip()
    assert "WARNING" in line and "ttt.t: msg with space" in line and "symbol=ETH/USDC:USDC" in line
