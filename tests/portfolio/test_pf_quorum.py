"""Actual position by quorum: portfolio.md §21.6 (pins Q-*) and the §6.3 consumer rules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ttt.domain.quorum import (
    Actual,
    LocalPosition,
    LocalSnapshot,
    ObserverConfig,
    OrderClosure,
    Reading,
    SourceResult,
    Unavailable,
    fill_fence,
    local_reading,
    observer_reading,
    parse_observer_document,
    parse_observer_response,
    quorum,
)
from ttt.domain.results import Unknown, Value

LOT = Decimal("0.0001")
BTC = "BTC/USDC:USDC"
WALLET = "0x5e9ee1089755c3435139848e47e6635505d5a13a"
NOW_DT = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW = NOW_DT.timestamp()


def r(size: float, margin: float | None = 10.0, as_of: float = NOW) -> Reading:
    return Reading(size, margin, as_of)


def run(
    sources: Sequence[tuple[str, SourceResult]], k: int = 2, lot: Decimal = LOT
) -> Value[Actual] | Unknown:
    return quorum(sources, k, lot).result


def reason(result: object) -> str:
    assert isinstance(result, Unknown | Unavailable), result
    return result.reason


def doc(
    positions: list[dict[str, Any]] | None = None,
    *,
    timestamp: str | None = None,
    wallet: str = WALLET,
    extra: dict[str, Any] | None = None,
    wallet_extra: dict[str, Any] | None = None,
) -> bytes:
    wallet_obj: dict[str, Any] = {
        "assetPositions": [{"type": "oneWay", "position": p} for p in (positions or [])],
        "marginSummary": {"accountValue": "1000.0", "totalMarginUsed": "0.0"},
    }
    wallet_obj.update(wallet_extra or {})
    body: dict[str, Any] = {
        "observer_id": "o1",
        "timestamp": timestamp or (NOW_DT - timedelta(seconds=3)).isoformat(),
        "schema": "3t-observer/1",
        "positions": {wallet: wallet_obj},
    }
    body.update(extra or {})
    return json.dumps(body).encode()


def observe(body: bytes, coin: str = "BTC", lot: Decimal = LOT, fence: float | None = None) -> SourceResult:
    return observer_reading(
        parse_observer_response(200, body), WALLET, coin, lot, NOW, ObserverConfig(), fence
    )


# --- Q-01..Q-10: quorum over readings ------------------------------------------------------------------


def test_Q_01_no_sources() -> None:
    result = run(
        [("L", Unavailable("stale")), ("O1", Unavailable("transport")), ("O2", Unavailable("stale"))]
    )
    assert reason(result) == "quorum_no_sources"
    assert isinstance(result, Unknown) and result.severity == "critical"


def test_Q_02_single_reading_insufficient() -> None:
    result = run([("L", r(0.0012)), ("O1", Unavailable("transport")), ("O2", Unavailable("transport"))])
    assert reason(result) == "quorum_insufficient"
    assert isinstance(result, Unknown) and result.severity == "warning"


def test_Q_03_two_agree() -> None:
    result = run([("L", r(0.0012)), ("O1", r(0.0012))])
    assert isinstance(result, Value) and result.value.size == 0.0012


def test_Q_04_two_differ() -> None:
    result = run([("L", r(0.0012)), ("O1", r(0.0013))])
    assert reason(result) == "quorum_disagreement"


def test_Q_05_two_agree_one_dissents() -> None:
    outcome = quorum([("L", r(0.0012)), ("O1", r(0.0012)), ("O2", r(0.0013))], 2, LOT)
    assert isinstance(outcome.result, Value) and outcome.result.value.size == 0.0012
    assert outcome.dissent == ("O2",)
    assert outcome.members == ("L", "O1")


def test_Q_06_all_differ() -> None:
    assert reason(run([("L", r(0.0012)), ("O1", r(0.0013)), ("O2", r(0.0014))])) == "quorum_disagreement"


def test_Q_07_stale_local_skipped() -> None:
    snapshot = LocalSnapshot(NOW - 61, {BTC: LocalPosition(0.0012, 5.0)})
    local = local_reading(snapshot, BTC, "", NOW, max_age_s=60)
    assert reason(local) == "stale"
    result = run([("L", local), ("O1", r(0.0012)), ("O2", r(0.0012))])
    assert isinstance(result, Value) and result.value.size == 0.0012


def test_Q_08_k3_all_agree() -> None:
    result = run([("L", r(0.0012)), ("O1", r(0.0012)), ("O2", r(0.0012))], k=3)
    assert isinstance(result, Value) and result.value.size == 0.0012


def test_Q_09_k3_one_unavailable() -> None:
    result = run([("L", r(0.0012)), ("O1", r(0.0012)), ("O2", Unavailable("transport"))], k=3)
    assert reason(result) == "quorum_insufficient"


def test_Q_10_k1_two_groups_conflict() -> None:
    result = run([("L", r(0.0012)), ("O1", r(0.0013))], k=1)
    assert reason(result) == "quorum_conflict"
    assert isinstance(result, Unknown) and result.severity == "critical"


# --- Q-11..Q-18: reading rules ---------------------------------------------------------------------------


def test_Q_11_absent_rows_are_positively_flat() -> None:
    local = local_reading(LocalSnapshot(NOW - 5, {}), BTC, "", NOW)
    observer = observe(doc([{"coin": "ETH", "szi": "0.5", "marginUsed": "3.0"}]))
    assert local == Reading(0.0, 0.0, NOW - 5)
    assert isinstance(observer, Reading) and observer.size == 0.0
    result = run([("L", local), ("O1", observer)])
    assert result == Value(Actual(0.0, 0.0))


def test_Q_12_missing_wallet_is_unavailable_not_flat() -> None:
    result = observe(doc([], wallet="0x0000000000000000000000000000000000000001"))
    assert reason(result) == "wallet_missing"


def test_Q_13_naive_timestamp_is_invalid_schema() -> None:
    assert reason(observe(doc([], timestamp="2026-01-01T12:00:00"))) == "invalid_schema"


def test_Q_13_z_suffix_is_accepted() -> None:
    result = observe(doc([], timestamp="2026-01-01T11:59:58Z"))
    assert isinstance(result, Reading) and result.as_of == NOW - 2


def test_Q_14_stale_document() -> None:
    stale = (NOW_DT - timedelta(seconds=121)).isoformat()
    assert reason(observe(doc([], timestamp=stale))) == "stale"
    fresh = (NOW_DT - timedelta(seconds=120)).isoformat()
    assert isinstance(observe(doc([], timestamp=fresh)), Reading)


def test_Q_15_future_document() -> None:
    ahead = (NOW_DT + timedelta(seconds=6)).isoformat()
    assert reason(observe(doc([], timestamp=ahead))) == "future"
    assert isinstance(observe(doc([], timestamp=(NOW_DT + timedelta(seconds=5)).isoformat())), Reading)


def test_Q_16_wallet_key_case_insensitive() -> None:
    body = doc(
        [{"coin": "BTC", "szi": "0.0012", "marginUsed": "1.0"}], wallet=WALLET.upper().replace("0X", "0x")
    )
    result = observe(body)
    assert isinstance(result, Reading) and result.size == 0.0012


def test_Q_17_off_grid_size() -> None:
    assert reason(observe(doc([{"coin": "BTC", "szi": "0.00123"}]))) == "off_grid"


def test_Q_18_case_variants_are_ambiguous() -> None:
    body = doc([{"coin": "kPEPE", "szi": "100"}, {"coin": "KPEPE", "szi": "200"}])
    assert reason(observe(body, coin="kPEPE", lot=Decimal(1))) == "ambiguous"


def test_case_insensitive_single_match_is_used() -> None:
    result = observe(doc([{"coin": "KPEPE", "szi": "100", "marginUsed": "2"}]), coin="kPEPE", lot=Decimal(1))
    assert result == Reading(100.0, 2.0, NOW - 3)


# --- Q-19..Q-24: margin, fence, failing observers, reference tests ---------------------------------------


def test_Q_19_margin_from_reporting_members() -> None:
    local = local_reading(LocalSnapshot(NOW - 5, {BTC: LocalPosition(0.0012, 15.5)}), BTC, "", NOW)
    observer = observe(doc([{"coin": "BTC", "szi": "0.0012"}]))
    assert isinstance(observer, Reading) and observer.margin_used is None
    result = run([("L", local), ("O1", observer)])
    assert result == Value(Actual(0.0012, 15.5))


def test_Q_20_no_margin_reported_holds() -> None:
    result = run([("L", r(0.0012, None)), ("O1", r(0.0012, None))])
    assert reason(result) == "margin_used_unknown"
    assert isinstance(result, Unknown) and result.severity == "warning"


def test_Q_20_margin_median_of_members() -> None:
    result = run([("L", r(0.0012, 10.0)), ("O1", r(0.0012, 20.0)), ("O2", r(0.0012, 15.0))])
    assert result == Value(Actual(0.0012, 15.0))
    result = run([("L", r(0.0012, 10.0)), ("O1", r(0.0012, 20.0))])
    assert result == Value(Actual(0.0012, 15.0))


def test_Q_21_fill_fence_excludes_older_readings() -> None:
    t = NOW - 10
    fence = fill_fence([t - 100, t], [OrderClosure("RESTING", None, 0.0)])
    assert fence == t
    local = local_reading(LocalSnapshot(t - 1, {BTC: LocalPosition(0.0010, 5.0)}), BTC, "", NOW, fence=fence)
    assert reason(local) == "older_than_fill"
    ts = datetime.fromtimestamp(t + 2, tz=UTC).isoformat()
    body = doc([{"coin": "BTC", "szi": "0.0012", "marginUsed": "6.0"}], timestamp=ts)
    o1 = observe(body, fence=fence)
    o2 = observe(body, fence=fence)
    result = run([("L", local), ("O1", o1), ("O2", o2)])
    assert result == Value(Actual(0.0012, 6.0))


def test_fill_fence_counts_only_orders_that_traded() -> None:
    orders = [
        OrderClosure("FILLED", 100.0, 1.0),
        OrderClosure("PARTIAL", 150.0, 0.5),
        OrderClosure("CANCELED", 300.0, 0.0),
        OrderClosure("CANCELED", 200.0, 0.1),
        OrderClosure("REJECTED", 400.0, 0.0),
    ]
    assert fill_fence([], orders) == 200.0
    assert fill_fence([], []) is None


def test_Q_22_timed_out_observer_does_not_stop_the_search() -> None:
    first = observer_reading(parse_observer_response(None, None, "timeout"), WALLET, "BTC", LOT, NOW)
    assert reason(first) == "transport"
    second = observe(doc([{"coin": "BTC", "szi": "0.0012", "marginUsed": "4.0"}]))
    local = local_reading(LocalSnapshot(NOW - 5, {BTC: LocalPosition(0.0012, 4.0)}), BTC, "", NOW)
    result = run([("L", local), ("O1", first), ("O2", second)])
    assert result == Value(Actual(0.0012, 4.0))


def test_Q_23_reference_agreement() -> None:
    lot = Decimal("0.00001")
    local = local_reading(LocalSnapshot(NOW - 5, {BTC: LocalPosition(0.00012, None)}), BTC, "", NOW)
    observer = observe(doc([{"coin": "BTC", "szi": "0.00012", "marginUsed": "15.5"}]), lot=lot)
    assert run([("L", local), ("O1", observer)], lot=lot) == Value(Actual(0.00012, 15.5))


def test_Q_24_reference_disagreement_holds_with_alert() -> None:
    lot = Decimal("0.00001")
    result = run([("L", r(0.00012)), ("O1", r(0.00015))], lot=lot)
    assert reason(result) == "quorum_disagreement"
    assert isinstance(result, Unknown) and result.severity == "critical"


# --- remaining §6.2/§6.3 unavailability reasons -----------------------------------------------------------


def test_local_dex_missing_and_off_grid() -> None:
    xyz = "XYZ-CL/USDC:USDC"
    snap = LocalSnapshot(NOW - 5, {}, missing_dexes=frozenset({"xyz"}), off_grid=frozenset({BTC}))
    assert reason(local_reading(snap, xyz, "xyz", NOW)) == "dex_missing"
    assert reason(local_reading(snap, BTC, "", NOW)) == "off_grid"


def test_http_status_and_invalid_json() -> None:
    assert reason(parse_observer_response(503, b"{}")) == "http_status"
    assert reason(parse_observer_response(200, b"{not json")) == "invalid_json"
    assert reason(parse_observer_response(200, b'{"timestamp": NaN}')) == "invalid_json"


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"positions": {}},
        {"timestamp": "yesterday", "positions": {}},
        {"timestamp": "2026-01-01T12:00:00+00:00", "positions": []},
    ],
    ids=["not_object", "no_timestamp", "bad_timestamp", "positions_not_object"],
)
def test_document_schema_errors(data: object) -> None:
    assert reason(parse_observer_document(data)) == "invalid_schema"


@pytest.mark.parametrize(
    "position",
    [{"szi": "1"}, {"coin": "", "szi": "1"}, {"coin": "BTC"}, {"coin": "BTC", "szi": "NaN"}],
    ids=["no_coin", "empty_coin", "no_szi", "nan_szi"],
)
def test_position_schema_errors(position: dict[str, Any]) -> None:
    assert reason(observe(doc([position]))) == "invalid_schema"


def test_wallet_without_asset_positions_list() -> None:
    body = json.dumps(
        {"timestamp": NOW_DT.isoformat(), "positions": {WALLET: {"assetPositions": "none"}}}
    ).encode()
    assert reason(observe(body)) == "invalid_schema"


def test_dex_not_observed_and_reference_document_accepted() -> None:
    hip3 = [{"coin": "xyz:CL", "szi": "2", "marginUsed": "1"}]
    assert reason(observe(doc(hip3, extra={"dexes": ["abc"]}), coin="xyz:CL", lot=Decimal(1))) == (
        "dex_not_observed"
    )
    observed = observe(doc(hip3, extra={"dexes": ["xyz"]}), coin="XYZ:CL", lot=Decimal(1))
    assert isinstance(observed, Reading) and observed.size == 2.0
    reference = observe(doc(hip3), coin="xyz:CL", lot=Decimal(1))
    assert isinstance(reference, Reading) and reference.size == 2.0


def test_wallet_time_older_than_timestamp_is_as_of() -> None:
    older_ms = (NOW - 20) * 1000
    result = observe(doc([], wallet_extra={"time": older_ms}))
    assert isinstance(result, Reading) and result.as_of == NOW - 20


def test_quorum_rejects_invalid_k_and_duplicate_names() -> None:
    with pytest.raises(ValueError, match="k"):
        quorum([("L", r(0.0012))], 0, LOT)
    with pytest.raises(ValueError, match="unique"):
        quorum([("L", r(0.0012)), ("L", r(0.0012))], 1, LOT)
