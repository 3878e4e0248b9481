"""`3t feed` as real processes (services.md §1.3, §1.4, §6.3): a local Hyperliquid `/info`, the real Redis
and PostgreSQL. One instance publishes, a second stands by and takes over after SIGTERM to the first; the
metrics listener serves `ttt_price_updates_total`; the audit row `config.loaded` names the market source."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import redis

from tests.distributed import dist_harness as h
from tests.runtime import s2_support as s
from tests.support import free_port

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"


def _price(client: redis.Redis, prefix: str, symbol: str) -> dict[str, object] | None:
    raw = client.get(f"{prefix}price:{symbol}")
    return None if raw is None else dict(json.loads(raw))


def _feed_state(client: redis.Redis, prefix: str, pid: int) -> str | None:
    for key in client.scan_iter(match=f"{prefix}hb:feed:*:{pid}"):
        raw = client.get(key)
        if raw is not None:
            return str(json.loads(raw)["detail"]["state"])
    return None


def test_one_feed_publishes_the_other_takes_over(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    mids = s.Mids({"BTC": "100000.5", "ETH": "3000.25", "SOL": "150"})
    client = redis.Redis.from_url(redis_url)
    with mids.server:
        port_a, port_b = free_port(), free_port()
        dir_a, dir_b = tmp_path / "a", tmp_path / "b"
        dir_a.mkdir()
        dir_b.mkdir()
        cfg_a, sec_a = s.s2_config(
            dir_a,
            db_url=pg_url,
            redis_url=redis_url,
            prefix=redis_prefix,
            info_url=mids.server.url,
            metrics_port=port_a,
        )
        cfg_b, sec_b = s.s2_config(
            dir_b,
            db_url=pg_url,
            redis_url=redis_url,
            prefix=redis_prefix,
            info_url=mids.server.url,
            metrics_port=port_b,
        )
        h.prepare_database(pg_url, cfg_a, sec_a)
        a = h.start("feed-a", dir_a, cfg_a, sec_a, "feed")
        b = None
        try:
            s.wait_until(
                lambda: (_price(client, redis_prefix, BTC) or {}).get("price") == 100000.5,
                60,
                "first price",
                [a],
            )
            btc, eth = _price(client, redis_prefix, BTC), _price(client, redis_prefix, ETH)
            assert btc is not None and btc["source"] == "poll_mid"
            assert eth is not None and eth["price"] == 3000.25
            assert client.xlen(f"{redis_prefix}stream:prices") >= 2
            assert _feed_state(client, redis_prefix, a.popen.pid) == "running"

            b = h.start("feed-b", dir_b, cfg_b, sec_b, "feed")
            s.wait_until(
                lambda: _feed_state(client, redis_prefix, b.popen.pid) == "standby", 60, "standby", [a, b]
            )

            text = s.wait_until(lambda: s.scrape(port_a), 20, "feed metrics", [a])
            count = s.sample(text, "ttt_price_updates_total", source="poll_mid", symbol=BTC)
            assert count is not None and count >= 1
            standby_text = s.wait_until(lambda: s.scrape(port_b), 20, "standby metrics", [b])
            assert s.sample(standby_text, "ttt_price_updates_total", source="poll_mid", symbol=BTC) is None

            a.stop(signal.SIGTERM, timeout=30)
            assert a.popen.returncode == 0, a.text()[-3000:]
            mids.set({"BTC": "100123.5", "ETH": "3001.25"})
            s.wait_until(
                lambda: (_price(client, redis_prefix, BTC) or {}).get("price") == 100123.5,
                60,
                "price from the standby after takeover",
                [b],
            )
            assert _feed_state(client, redis_prefix, b.popen.pid) == "running"
            b.stop(signal.SIGTERM, timeout=30)
            assert b.popen.returncode == 0, b.text()[-3000:]
            assert client.get(f"{redis_prefix}lock:feed") is None, "a clean stop releases the lock"
        finally:
            for p in (a, b):
                if p is not None:
                    p.stop(signal.SIGKILL)
    client.close()
    loaded = s.audit_rows(pg_url, "config.loaded")
    feeds = [r for r in loaded if r["actor"].startswith("feed@")]
    assert len(feeds) == 2
    for row in feeds:
        assert row["payload"]["market_source"] == "hyperliquid"
        assert row["payload"]["market_reason"] == "configured"
        assert row["payload"]["process"] == "feed"
        assert len(row["payload"]["config_sha256"]) == 64
    assert "MARKET DATA: HYPERLIQUID" in a.text()


def _run(cfg: Path, sec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ttt.cli.dist_cmd", "--config", str(cfg), "--secrets", str(sec), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=h.REPO)


def test_feed_refuses_simulated_sources_in_distributed_mode(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    cfg, sec = s.s2_config(
        tmp_path,
        db_url=pg_url,
        redis_url=redis_url,
        prefix=redis_prefix,
        extra={"market_data.source": "synthetic"},
    )
    h.prepare_database(pg_url, cfg, sec)
    done = _run(cfg, sec, "feed")
    assert done.returncode == 2, done.stderr
    assert "market_data.source" in done.stderr and "Traceback" not in done.stderr


def test_feed_exits_3_when_the_schema_is_behind(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    cfg, sec = s.s2_config(tmp_path, db_url=pg_url, redis_url=redis_url, prefix=redis_prefix)
    done = _run(cfg, sec, "feed")
    assert done.returncode == 3, done.stderr
    assert "3t db upgrade" in done.stderr


def test_feed_metrics_port_in_use_is_one_line_and_exit_1(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    with s.taken_port() as port:
        cfg, sec = s.s2_config(
            tmp_path, db_url=pg_url, redis_url=redis_url, prefix=redis_prefix, metrics_port=port
        )
        h.prepare_database(pg_url, cfg, sec)
        done = _run(cfg, sec, "feed")
    assert done.returncode == 1, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "observability.metrics_port" in done.stderr
    assert "Traceback" not in done.stderr
