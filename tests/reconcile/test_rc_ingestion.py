"""portfolio.md §2 account ingestion: ING-01..04 persistence, failure-matrix rows F31 and F32.

The account answers are the recorded Hyperliquid `clearinghouseState` response (shared fixtures),
served by a fake of our own `ExchangeAdapter` port.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tests.reconcile.rc_support import (
    NOW,
    WALLET,
    FakeClock,
    alert_reasons,
    build_scenario,
    counter,
    seed_products,
)
from tests.support import require_shared_fixture
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db.uow import UnitOfWork
from ttt.services.portfolio.alerts import AlertSink, db_audit_writer
from ttt.services.portfolio.ingestion import BalanceIngestion, IngestionSettings
from ttt.telemetry.metrics import Metrics


def recorded_state() -> dict[str, Any]:
    path = require_shared_fixture("hyperliquid-sdk-cassettes", "test_get_user_state.yaml")
    cassette = yaml.safe_load(path.read_text())
    body = cassette["interactions"][0]["response"]["body"]["string"]
    state = dict(json.loads(body))
    # The recording predates the API's crossMaintenanceMarginUsed field; the value is the spec's example.
    assert "crossMaintenanceMarginUsed" not in state
    state["crossMaintenanceMarginUsed"] = "52.3"
    return state


class RecordedAccount:
    """`fetch_account` of our ExchangeAdapter port over recorded answers; a dex mapped to an exception
    fails (and is absent from the answer, as the port specifies)."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[str]]] = []

    def fetch_account(self, wallet: str, dexes: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.calls.append((wallet, list(dexes)))
        out = {}
        for d in dexes:
            answer = self.answers.get(d)
            if isinstance(answer, BaseException):
                raise answer
            if answer is not None:
                out[d] = copy.deepcopy(answer)
        return out


class RateLimited(Exception):
    status = 429


def _ingestion(
    engine: Engine, answers: Mapping[str, Any], hip3: Sequence[str] = ()
) -> tuple[BalanceIngestion, Metrics, MemoryCache]:
    clock = FakeClock(NOW)
    metrics = Metrics.create(CollectorRegistry())
    cache = MemoryCache()
    alerts = AlertSink(clock, metrics, audit=db_audit_writer(engine, "test"))
    svc = BalanceIngestion(
        RecordedAccount(answers),  # type: ignore[arg-type]
        engine,
        clock,
        alerts,
        IngestionSettings("paper", "paper", WALLET, tuple(hip3)),
        metrics=metrics,
        cache=cache,
    )
    return svc, metrics, cache


def test_ING_01_position_stored_per_snapshot(engine: Engine) -> None:
    seed_products(engine, NOW)
    svc, metrics, cache = _ingestion(engine, {"": recorded_state()})
    result = svc.ingest()
    assert result.outcome == "ok"
    with UnitOfWork(engine, read_only=True) as uow:
        found = uow.balances.latest_usable()
        assert found is not None
        snap, positions = found
        products = {p.id: p.symbol for p in uow.venues.products(snap.exchange_id)}
        by_symbol = {products[p.product_id]: p for p in positions}
    btc = by_symbol["BTC/USDC:USDC"]
    assert btc.position_size == Decimal("-0.00785") and btc.margin_used == Decimal("10.582271")
    assert btc.leverage == {"type": "cross", "value": 20}
    assert by_symbol["ETH/USDC:USDC"].position_size == Decimal("0.1334")
    assert snap.id == result.snapshot_id and snap.usable and not snap.partial
    assert snap.wallet == WALLET
    assert counter(metrics, "ttt_balance_snapshots_total", result="ok") == 1
    [(_, fields)] = cache.xrange("stream:balance")
    assert fields["snapshot_id"] == str(result.snapshot_id) and fields["usable"] == "1"
    second = svc.ingest()  # older snapshots are kept (L7)
    with UnitOfWork(engine, read_only=True) as uow:
        assert len(uow.balances.positions(result.snapshot_id)) == 2  # type: ignore[arg-type]
        assert len(uow.balances.positions(second.snapshot_id)) == 2  # type: ignore[arg-type]


def test_ING_02_F31_unmapped_position_alerts_and_is_not_stored(engine: Engine) -> None:
    seed_products(engine, NOW)
    svc, metrics, _ = _ingestion(engine, {"": recorded_state()})
    result = svc.ingest()
    with UnitOfWork(engine, read_only=True) as uow:
        snap = uow.balances.get(result.snapshot_id)  # type: ignore[arg-type]
        assert snap is not None and "ATOM" in snap.unmapped and snap.usable
        assert len(uow.balances.positions(snap.id)) == 2  # BTC and ETH only
    assert "unmapped_position" in alert_reasons(engine)
    assert (
        counter(
            metrics, "ttt_alerts_total", component="account", reason="unmapped_position", severity="warning"
        )
        >= 1
    )


def test_ING_03_F32_nan_account_value_rejects_snapshot(engine: Engine) -> None:
    seed_products(engine, NOW)
    state = recorded_state()
    state["marginSummary"]["accountValue"] = "NaN"
    svc, metrics, _ = _ingestion(engine, {"": state})
    result = svc.ingest()
    assert result.outcome == "invalid" and result.snapshot_id is None
    with UnitOfWork(engine, read_only=True) as uow:
        assert uow.balances.latest_id() is None
    assert counter(metrics, "ttt_balance_snapshots_total", result="invalid") == 1
    assert alert_reasons(engine) == ["balance_fetch_failed"]


def test_ING_04_hip3_dex_failure_stores_partial_unusable(engine: Engine) -> None:
    seed_products(engine, NOW)
    svc, metrics, _ = _ingestion(
        engine, {"": recorded_state(), "xyz": ConnectionError("dex down")}, hip3=["xyz"]
    )
    # the port's contract: a failed dex is absent from the answer, not an exception for the whole call
    svc._exchange = RecordedAccount({"": recorded_state()})  # type: ignore[assignment]
    result = svc.ingest()
    assert result.outcome == "partial"
    with UnitOfWork(engine, read_only=True) as uow:
        snap = uow.balances.get(result.snapshot_id)  # type: ignore[arg-type]
        assert snap is not None and snap.partial and not snap.usable and snap.missing_dexes == ["xyz"]
        assert uow.balances.latest_usable() is None
    assert counter(metrics, "ttt_balance_snapshots_total", result="partial") == 1


def test_F32_fetch_error_alerts_and_later_holds_the_cycle(engine: Engine) -> None:
    sc = build_scenario(engine)
    svc, metrics, _ = _ingestion(engine, {"": ConnectionError("exchange down")})
    result = svc.ingest()
    assert result.outcome == "fetch_error"
    assert counter(metrics, "ttt_balance_snapshots_total", result="fetch_error") == 1
    assert "balance_fetch_failed" in alert_reasons(engine)
    sc.clock.advance(200)  # no usable snapshot within balance_max_age_s: F7
    cycle = sc.service().run_cycle("manual:1767269000000")
    assert {r.hold_reason for r in cycle.records} == {"balance_unavailable"}
    assert sc.gateway.submissions == []


def test_rate_limit_is_counted_and_silent(engine: Engine) -> None:
    seed_products(engine, NOW)
    svc, metrics, _ = _ingestion(engine, {"": RateLimited("429")})
    assert svc.ingest().outcome == "rate_limited"
    assert counter(metrics, "ttt_balance_snapshots_total", result="rate_limited") == 1
    assert alert_reasons(engine) == []


def test_missing_cross_maintenance_margin_is_rejected(engine: Engine) -> None:
    """V3: the main dex's crossMaintenanceMarginUsed must be a finite number; absent is not zero."""
    seed_products(engine, NOW)
    state = recorded_state()
    del state["crossMaintenanceMarginUsed"]
    svc, _, _ = _ingestion(engine, {"": state})
    assert svc.ingest().outcome == "invalid"


@pytest.mark.parametrize("value", ["-1", None])
def test_negative_or_missing_account_value_rejected(engine: Engine, value: str | None) -> None:
    seed_products(engine, NOW)
    state = recorded_state()
    state["marginSummary"]["accountValue"] = value
    svc, _, _ = _ingestion(engine, {"": state})
    assert svc.ingest().outcome == "invalid"
