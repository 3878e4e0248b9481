"""portfolio.md §13: the observer poll loop, its document and HTTP API (OBS-01..05, failure-matrix F36)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from tests.reconcile.rc_support import NOW, FakeClock, counter
from ttt.api.observer import create_app
from ttt.domain.quorum import ObserverDocument, Reading, observer_reading, parse_observer_document
from ttt.services.portfolio.alerts import AlertSink
from ttt.services.portfolio.observer import EmbeddedObserverSource, ObserverPoller
from ttt.telemetry.metrics import Metrics

W1 = "0x00000000000000000000000000000000000000a1"
W2 = "0x00000000000000000000000000000000000000a2"
W3 = "0x00000000000000000000000000000000000000a3"


def _state(value: str, positions: list[tuple[str, str]], used: str = "0.0") -> dict[str, Any]:
    return {
        "marginSummary": {
            "accountValue": value,
            "totalMarginUsed": used,
            "totalNtlPos": "0.0",
            "totalRawUsd": value,
        },
        "crossMarginSummary": {"accountValue": value, "totalMarginUsed": used},
        "crossMaintenanceMarginUsed": "1.5",
        "withdrawable": value,
        "assetPositions": [
            {"type": "oneWay", "position": {"coin": c, "szi": s, "marginUsed": "1.0"}} for c, s in positions
        ],
    }


class RateLimited(Exception):
    status = 429


class Venue:
    """The (wallet, dex) → clearinghouseState function the poller calls; failures are per request."""

    def __init__(self, answers: Mapping[tuple[str, str], Any]) -> None:
        self.answers = dict(answers)
        self.calls: list[tuple[str, str]] = []

    def __call__(self, wallet: str, dex: str) -> Mapping[str, Any]:
        self.calls.append((wallet, dex))
        answer = self.answers[(wallet, dex)]
        if isinstance(answer, BaseException):
            raise answer
        return dict(answer)


def _poller(venue: Venue, wallets: list[str], clock: FakeClock, tmp_path: Path, **kw: Any) -> ObserverPoller:
    return ObserverPoller(
        venue, wallets, clock, observer_id="obs-test", persist_path=tmp_path / "obs.json", **kw
    )


def test_OBS_01_aggregates_dexes(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    venue = Venue(
        {
            (W1, ""): _state("100.0", [("BTC", "0.001")], used="10.0"),
            (W1, "xyz"): _state("50.5", [("xyz:CL", "2.0")], used="5.25"),
        }
    )
    poller = _poller(venue, [W1.upper().replace("0X", "0x")], clock, tmp_path, dexes=["xyz"])
    report = poller.poll_once()
    assert report.succeeded == [W1] and report.published
    doc = poller.document
    wallet = doc["positions"][W1]
    assert wallet["marginSummary"]["accountValue"] == "150.5"
    assert wallet["marginSummary"]["totalMarginUsed"] == "15.25"
    assert wallet["crossMaintenanceMarginUsed"] == "1.5"  # the main dex's value
    assert [p["position"]["coin"] for p in wallet["assetPositions"]] == ["BTC", "xyz:CL"]
    assert wallet["time"] == int(NOW * 1000)
    assert doc["timestamp"] == "2026-01-01T12:00:00.000000+00:00" and doc["timestamp"].endswith("+00:00")
    assert doc["schema"] == "3t-observer/1" and doc["dexes"] == ["xyz"] and doc["observer_id"] == "obs-test"
    parsed = parse_observer_document(doc)
    assert isinstance(parsed, ObserverDocument)
    reading = observer_reading(parsed, W1, "BTC", 0.00001, NOW + 1)
    assert reading == Reading(0.001, 1.0, NOW)


def test_OBS_02_F36_failed_dex_omits_the_wallet(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    metrics = Metrics.create(CollectorRegistry())
    alerts = AlertSink(clock, metrics)
    venue = Venue(
        {
            (W1, ""): _state("100.0", []),
            (W1, "xyz"): ConnectionError("dex down"),
            (W2, ""): _state("7.0", []),
            (W2, "xyz"): _state("0.0", []),
        }
    )
    poller = _poller(venue, [W1, W2], clock, tmp_path, dexes=["xyz"], alerts=alerts, metrics=metrics)
    report = poller.poll_once()
    assert report.failed == [W1] and report.succeeded == [W2]
    assert list(poller.document["positions"]) == [W2]
    assert counter(metrics, "ttt_observer_polls_total", result="error") == 1
    assert (
        counter(
            metrics,
            "ttt_alerts_total",
            component="observer",
            reason="observer_poll_failed",
            severity="warning",
        )
        == 1
    )
    # a consumer reading W1 finds it missing: unavailable, never flat
    parsed = parse_observer_document(poller.document)
    assert isinstance(parsed, ObserverDocument)
    assert observer_reading(parsed, W1, "BTC", 0.00001, NOW).reason == "wallet_missing"  # type: ignore[union-attr]


def test_OBS_03_F36_every_wallet_fails_document_unchanged(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    venue = Venue({(W1, ""): _state("100.0", [])})
    poller = _poller(venue, [W1], clock, tmp_path)
    poller.poll_once()
    before = poller.document
    venue.answers[(W1, "")] = TimeoutError("timeout")
    clock.advance(30)
    report = poller.poll_once()
    assert report.failed == [W1] and not report.published
    assert poller.document == before  # the timestamp ages, consumers see it go stale
    parsed = parse_observer_document(poller.document)
    clock.advance(100)
    assert observer_reading(parsed, W1, "BTC", 0.00001, clock.now()).reason == "stale"  # type: ignore[arg-type,union-attr]


def test_OBS_04_rate_limit_stops_the_cycle(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    venue = Venue({(W1, ""): RateLimited("429"), (W2, ""): _state("1.0", []), (W3, ""): _state("1.0", [])})
    poller = _poller(venue, [W1, W2, W3], clock, tmp_path)
    report = poller.poll_once()
    assert report.rate_limited and report.not_polled == [W2, W3]
    assert venue.calls == [(W1, "")]
    assert poller.backoff_intervals == 1


def test_OBS_05_restart_serves_the_persisted_document(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    venue = Venue({(W1, ""): _state("100.0", [("BTC", "0.001")])})
    _poller(venue, [W1], clock, tmp_path).poll_once()
    saved = json.loads((tmp_path / "obs.json").read_text())
    clock.advance(3600)
    restarted = _poller(Venue({}), [W1], clock, tmp_path)
    assert restarted.document == saved
    assert restarted.document["timestamp"] == "2026-01-01T12:00:00.000000+00:00"
    client = TestClient(create_app(restarted, clock, poll_interval_s=30))
    assert client.get("/3T-observer.json").json() == saved
    assert client.get("/v1/snapshot").json() == saved


def test_api_before_first_success_and_health(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    venue = Venue({(W1, ""): _state("100.0", [])})
    poller = _poller(venue, [W1], clock, tmp_path, dexes=["xyz"], metrics=metrics)
    venue.answers[(W1, "xyz")] = _state("0.0", [])
    client = TestClient(create_app(poller, clock, poll_interval_s=30, registry=registry))
    empty = client.get("/3T-observer.json").json()
    assert empty == {
        "observer_id": "obs-test",
        "timestamp": "2026-01-01T12:00:00.000000+00:00",
        "positions": {},
        "dexes": ["xyz"],
        "schema": "3t-observer/1",
    }
    assert client.get("/health").json()["status"] == "stale"
    poller.poll_once()
    clock.advance(10)
    health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "observer_id": "obs-test",
        "last_success": "2026-01-01T12:00:00.000000+00:00",
        "age_s": 10.0,
    }
    clock.advance(81)
    assert client.get("/health").json()["status"] == "stale"  # 91 s > 3 × 30 s
    metrics_text = client.get("/metrics").text
    assert 'ttt_observer_polls_total{result="ok"} 1.0' in metrics_text


def test_embedded_source_reads_in_process(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    poller = _poller(Venue({(W1, ""): _state("5.0", [("ETH", "-0.5")])}), [W1], clock, tmp_path)
    poller.poll_once()
    doc = EmbeddedObserverSource(poller).fetch()
    assert isinstance(doc, ObserverDocument)
    assert observer_reading(doc, W1, "ETH", 0.0001, NOW) == Reading(-0.5, 1.0, NOW)
