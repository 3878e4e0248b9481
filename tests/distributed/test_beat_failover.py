"""SV-10: two `3t beat` processes; exactly one schedules, the other takes over within 60 s of it stopping.

The lock `beat` has a fixed TTL of 60 s (services.md §3, §5; no configuration key), so the crash case
really waits for it to expire.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed import dist_harness as h

UNUSED_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/ttt_beat_never_connects"


@pytest.fixture
def broker() -> Iterator[str]:
    yield from h.broker_session()


def _active(p: h.Proc) -> bool:
    return "beat active" in p.text()


def _sent(p: h.Proc) -> int:
    return p.text().count("beat sent ")


def test_sv10_one_beat_schedules_and_the_standby_takes_over(
    tmp_path: Path, redis_url: str, redis_prefix: str, broker: str
) -> None:
    cfg, sec = h.write_config(
        tmp_path,
        db_url=UNUSED_DB,
        redis_url=redis_url,
        prefix=redis_prefix,
        broker_url=broker,
        runs=1,
        shard_size=10,
    )
    a = h.start("beat-a", tmp_path, cfg, sec, "beat")
    b = h.start("beat-b", tmp_path, cfg, sec, "beat")
    c: h.Proc | None = None
    try:
        h.wait_for(lambda: _active(a) or _active(b), 30, "an active beat", [a, b])
        first, second = (a, b) if _active(a) else (b, a)
        h.wait_for(lambda: "beat standby" in second.text(), 30, "the standby", [a, b])
        h.wait_for(lambda: _sent(first) >= 6, 30, "scheduled dispatches", [a, b])  # > one 5 s period
        assert _sent(second) == 0 and not _active(second)

        first.kill9()
        killed = time.monotonic()
        h.wait_for(lambda: _active(second), 62, "takeover after kill -9 (lock TTL 60 s)", [second])
        assert time.monotonic() - killed <= 61.5
        h.wait_for(lambda: _sent(second) >= 2, 15, "the new active beat scheduling", [second])

        c = h.start("beat-c", tmp_path, cfg, sec, "beat")
        h.wait_for(lambda: "beat standby" in c.text(), 30, "a new standby", [second, c])
        second.stop(signal.SIGTERM)
        assert second.popen.returncode == 0
        h.wait_for(lambda: _active(c), 5, "takeover after a clean stop (lock released)", [c])
    finally:
        for p in (a, b, *([c] if c else [])):
            p.stop()
