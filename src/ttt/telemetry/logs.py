"""Structured logging with the trace-consistent sampling of services.md §8.3.

INFO-and-below records emitted inside a noisy task are kept iff that task's trace was sampled, so logs and
traces of the same work agree. Known secret values are masked in every record as a last line of defence.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from ttt.telemetry.tracing import trace_id_sampled

CONTEXT_FIELDS = ("cycle_id", "symbol", "client_order_id", "component", "task")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

_noisy_task: ContextVar[str | None] = ContextVar("ttt_noisy_task", default=None)
_log_context: ContextVar[dict[str, Any] | None] = ContextVar("ttt_log_context", default=None)


@contextlib.contextmanager
def noisy_task(name: str) -> Iterator[None]:
    """Mark the current context as a noisy task (its INFO logs are sampled)."""
    token = _noisy_task.set(name)
    try:
        yield
    finally:
        _noisy_task.reset(token)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach fields (cycle_id, symbol, client_order_id, …) to every record emitted inside the block."""
    merged = {**(_log_context.get() or {}), **fields}
    token = _log_context.set(merged)
    try:
        yield
    finally:
        _log_context.reset(token)


class SamplingFilter(logging.Filter):
    def __init__(self, sampling_rate: float, rng: random.Random | None = None) -> None:
        super().__init__()
        self.sampling_rate = sampling_rate
        self._rng = rng or random.Random()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or _noisy_task.get() is None:
            return True
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            return bool(ctx.trace_flags.sampled) or trace_id_sampled(ctx.trace_id, self.sampling_rate)
        return self._rng.random() < self.sampling_rate


class SecretMaskFilter(logging.Filter):
    """Replaces any registered secret value appearing in a record's rendered message or arguments."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.mask(record.getMessage())
            record.args = None
        return True


def _record_fields(record: logging.LogRecord, process: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
        "level": record.levelname,
        "logger": record.name,
        "process": process,
        "message": record.getMessage(),
    }
    ids = getattr(record, "trace_ids", None)
    if ids:
        fields["trace_id"], fields["span_id"] = ids
    fields.update(_log_context.get() or {})
    for key, value in vars(record).items():
        if key not in _RESERVED and key != "trace_ids":
            fields[key] = value
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


class _TraceIdsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_ids = (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") if ctx.is_valid else None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_record_fields(record, self.process), default=str, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        fields = _record_fields(record, self.process)
        head = f"{fields.pop('ts')} {fields.pop('level'):<7} {fields.pop('logger')}: {fields.pop('message')}"
        fields.pop("process")
        exc = fields.pop("exc", None)
        tail = " ".join(f"{k}={_kv(v)}" for k, v in fields.items())
        line = f"{head} {tail}".rstrip()
        return f"{line}\n{exc}" if exc else line


def _kv(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


def setup_logging(
    *,
    process: str,
    level: str = "INFO",
    fmt: str = "text",
    sampling_rate: float = 0.01,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger once for a process; returns the installed handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(process) if fmt == "json" else KeyValueFormatter(process))
    handler.addFilter(_TraceIdsFilter())
    handler.addFilter(SamplingFilter(sampling_rate))
    handler.addFilter(SecretMaskFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_ttt_handler", False):
            root.removeHandler(old)
    handler._ttt_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
