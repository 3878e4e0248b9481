"""The Hyperliquid /info client against a real local HTTP server answering with recorded shapes."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.market.hl_local import (
    InfoServer,
    ManualClock,
    Recorded,
    Reply,
    candle_route,
    cassette,
    cassette_answer,
    free_port,
    openapi_example,
)
from ttt.adapters.market.hyperliquid_http import (
    MAINNET_URL,
    TESTNET_URL,
    CircuitOpen,
    HyperliquidError,
    HyperliquidInfoClient,
    RateLimited,
    RequestFailed,
    UnexpectedResponse,
    base_url_for,
    ws_url_for,
)


def client_for(server: InfoServer, **kw: Any) -> HyperliquidInfoClient:
    kw.setdefault("sleep", lambda s: None)
    return HyperliquidInfoClient(network="custom", base_url=server.url, timeout_s=5, **kw)


def static(doc: Any, status: int = 200) -> Any:
    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        return status, doc

    return route


def scripted(replies: list[Reply], then: Reply) -> Any:
    queue = list(replies)

    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        return queue.pop(0) if queue else then

    return route


# -- networks --------------------------------------------------------------------------------------------


def test_network_urls() -> None:
    assert base_url_for("mainnet") == "https://api.hyperliquid.xyz"
    assert base_url_for("testnet") == "https://api.hyperliquid-testnet.xyz"
    assert base_url_for("custom", "http://127.0.0.1:3001/") == "http://127.0.0.1:3001"
    assert ws_url_for("mainnet") == "wss://api.hyperliquid.xyz/ws"
    assert ws_url_for("testnet") == "wss://api.hyperliquid-testnet.xyz/ws"
    with pytest.raises(HyperliquidError, match="base_url"):
        base_url_for("custom", None)
    with pytest.raises(HyperliquidError, match="ws_url"):
        ws_url_for("custom", None)
    assert HyperliquidInfoClient(network="testnet").info_url == TESTNET_URL + "/info"
    assert HyperliquidInfoClient().info_url == MAINNET_URL + "/info"


def test_proxy_configuration_errors() -> None:
    with pytest.raises(HyperliquidError, match="origin"):
        HyperliquidInfoClient(proxies=["http://p/"])
    with pytest.raises(HyperliquidError, match="list"):
        HyperliquidInfoClient(proxies="http://p/", origin="https://o")  # type: ignore[arg-type]


# -- typed reads from recorded shapes --------------------------------------------------------------------


def test_all_mids_from_cassette() -> None:
    recorded = cassette_answer("test_get_all_mids.yaml", "allMids")
    with InfoServer(static(recorded)) as server, client_for(server) as client:
        mids = client.all_mids()
        assert server.bodies() == [{"type": "allMids"}]
        client.all_mids(dex="xyz")
        assert server.bodies()[-1] == {"type": "allMids", "dex": "xyz"}
    assert mids["BTC"] == Decimal("30135.0")
    assert mids["kPEPE"] == Decimal("0.001565")
    assert set(mids) == set(recorded)
    # No proxy configured: no Origin header ever.
    assert all("origin" not in r.headers for r in server.requests)


def test_candle_snapshot_from_cassette() -> None:
    (req, bars) = next(
        (b, a) for b, a in cassette("test_get_candles_snapshot.yaml") if b["type"] == "candleSnapshot"
    )
    start, end = req["req"]["startTime"], req["req"]["endTime"]
    with InfoServer(static(bars)) as server, client_for(server) as client:
        candles = client.candle_snapshot("kPEPE", "1h", start, end)
        sent = server.bodies("candleSnapshot")
    # One request (23 hours < 5000 bars); the start aligned down to the hour that contains it.
    assert len(sent) == 1
    assert sent[0]["req"]["startTime"] == start - start % 3_600_000
    assert sent[0]["req"]["endTime"] == end
    in_window = [b for b in bars if start - start % 3_600_000 <= b["t"] <= end]
    assert [c.ts_open for c in candles] == [b["t"] for b in in_window]
    first = in_window[0]
    assert (candles[0].open, candles[0].high, candles[0].low, candles[0].close) == (
        float(first["o"]),
        float(first["h"]),
        float(first["l"]),
        float(first["c"]),
    )
    assert candles[0].volume == float(first["v"]) and candles[0].trades == first["n"]
    assert candles[0].ts_close == first["T"]


def test_candle_paging_over_the_5000_bar_limit() -> None:
    step = 60_000
    start = 1_700_000_000_000 - 1_700_000_000_000 % step
    n = 12_345
    end = start + (n - 1) * step
    with InfoServer(candle_route()) as server, client_for(server) as client:
        candles = client.candle_snapshot("BTC", "1m", start, end)
        sent = [b["req"] for b in server.bodies("candleSnapshot")]
    # 12 345 bars = 5000 + 5000 + 2345: three requests, none asking for more than 5000 bars.
    assert len(sent) == 3
    assert [r["startTime"] for r in sent] == [start, start + 5000 * step, start + 10_000 * step]
    assert all((r["endTime"] - r["startTime"]) // step + 1 <= 5000 for r in sent)
    assert len(candles) == n
    assert [c.ts_open for c in candles] == list(range(start, end + 1, step))
    k = start // step + 7000
    assert candles[7000].open == pytest.approx(100 + (k % 100_000) / 1000, abs=1e-9)


def test_candle_server_cap_without_chunking_would_lose_bars() -> None:
    """The local server really truncates at 5000: one oversized request gets only 5000 bars."""
    step = 60_000
    with InfoServer(candle_route()) as server, client_for(server) as client:
        raw = client.post_info(
            {
                "type": "candleSnapshot",
                "req": {"coin": "BTC", "interval": "1m", "startTime": 0, "endTime": 6000 * step},
            }
        )
    assert len(raw) == 5000


def test_funding_history_from_cassette_pages_until_empty() -> None:
    rows = cassette_answer("test_get_funding_history-None.yaml", "fundingHistory")

    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        lo, hi = body["startTime"], body.get("endTime", 10**15)
        return 200, [r for r in rows if lo <= r["time"] <= hi][:500]

    start = rows[0]["time"]
    with InfoServer(route) as server, client_for(server) as client:
        rates = client.funding_history("BTC", start)
        sent = server.bodies("fundingHistory")
    assert len(rates) == len(rows)
    assert rates[0].time_ms == rows[0]["time"] and rates[0].rate == Decimal(rows[0]["fundingRate"])
    assert rates[-1].rate == Decimal(rows[-1]["fundingRate"])
    assert rates[0].premium == Decimal(rows[0]["premium"])
    # Pages of 500 advance by time; the last request returns nothing and ends the loop.
    assert len(rows) > 500
    assert len(sent) == -(-len(rows) // 500) + 1
    assert sent[0]["startTime"] == start
    assert all(b["startTime"] > a["startTime"] for a, b in itertools.pairwise(sent))


def test_funding_history_with_end_time() -> None:
    (req, rows) = next(
        (b, a)
        for b, a in cassette("test_get_funding_history-1684811870000.yaml")
        if b["type"] == "fundingHistory"
    )
    with InfoServer(static(rows)) as server, client_for(server) as client:
        rates = client.funding_history("BTC", req["startTime"], req["endTime"])
        sent = server.bodies("fundingHistory")
    assert sent[0] == {
        "type": "fundingHistory",
        "coin": "BTC",
        "startTime": req["startTime"],
        "endTime": req["endTime"],
    }
    assert [r.time_ms for r in rates] == [r["time"] for r in rows]


def test_meta_and_asset_ctxs_from_openapi_example() -> None:
    example = openapi_example("assetctxs.yaml")
    with InfoServer(static(example)) as server, client_for(server) as client:
        ctxs = client.meta_and_asset_ctxs()
        client.meta_and_asset_ctxs(dex="xyz")
        assert server.bodies() == [{"type": "metaAndAssetCtxs"}, {"type": "metaAndAssetCtxs", "dex": "xyz"}]
    assert [c.coin for c in ctxs] == [u["name"] for u in example[0]["universe"]]
    assert ctxs[0].funding == Decimal(example[1][0]["funding"])
    assert ctxs[0].mark_px == Decimal(example[1][0]["markPx"])


# -- wrong shapes are errors, never numbers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "call", "match"),
    [
        (["BTC", "1"], "mids", "expected a JSON object"),
        ({"BTC": "abc"}, "mids", "'BTC'"),
        ({"BTC": "NaN"}, "mids", "finite"),
        ({"BTC": None}, "mids", "expected a number"),
        ({"not": "a list"}, "candles", "expected a JSON array"),
        (
            [{"t": 0, "o": "1", "h": "2", "l": "0.5", "v": "1", "s": "BTC", "i": "1m"}],
            "candles",
            "'c' is missing",
        ),
        ([{"t": 0, "o": "1", "h": "0.9", "l": "0.5", "c": "1", "v": "1"}], "candles", "inconsistent"),
        (
            [{"t": 0, "o": "1", "h": "2", "l": "0.5", "c": "1", "v": "1", "s": "ETH"}],
            "candles",
            "asked for 'BTC'",
        ),
        ([{"t": "0", "o": "1", "h": "2", "l": "0.5", "c": "1", "v": "1"}], "candles", "expected an integer"),
        ([[{"universe": []}]], "ctxs", "pair"),
        ([{"universe": [{"name": "BTC"}]}, []], "ctxs", "cannot pair"),
        ([{"universe": [{"name": "BTC"}]}, [{"markPx": "1"}]], "ctxs", "'funding' is missing"),
    ],
)
def test_unexpected_shapes_raise(answer: Any, call: str, match: str) -> None:
    with (
        InfoServer(static(answer)) as server,
        client_for(server) as client,
        pytest.raises(UnexpectedResponse, match=match),
    ):
        if call == "mids":
            client.all_mids()
        elif call == "candles":
            client.candle_snapshot("BTC", "1m", 0, 60_000)
        else:
            client.meta_and_asset_ctxs()


def test_non_json_answer_is_an_error() -> None:
    with (
        InfoServer(static("<html>gateway</html>")) as server,
        client_for(server) as client,
        pytest.raises(UnexpectedResponse, match="not JSON"),
    ):
        client.all_mids()


def test_unknown_interval_refused_before_sending() -> None:
    with InfoServer(static([])) as server, client_for(server) as client:
        with pytest.raises(HyperliquidError, match="1M"):
            client.candle_snapshot("BTC", "1M", 0, 1)
        assert server.requests == []


# -- retries, 429, breaker, proxies -----------------------------------------------------------------------


def test_reads_retry_5xx_after_1_and_2_seconds() -> None:
    sleeps: list[float] = []
    mids = {"BTC": "30135.0"}
    with (
        InfoServer(scripted([(502, "bad gateway"), (503, "unavailable")], (200, mids))) as server,
        client_for(server, sleep=sleeps.append) as client,
    ):
        assert client.all_mids() == {"BTC": Decimal("30135.0")}
    assert len(server.requests) == 3
    assert sleeps == [1.0, 2.0]


def test_reads_give_up_after_three_attempts() -> None:
    sleeps: list[float] = []
    with (
        InfoServer(static("down", status=500)) as server,
        client_for(server, sleep=sleeps.append) as client,
        pytest.raises(RequestFailed, match="HTTP 500") as info,
    ):
        client.all_mids()
    assert info.value.status == 500
    assert len(server.requests) == 3
    assert sleeps == [1.0, 2.0]


def test_network_error_is_retried_then_raised() -> None:
    sleeps: list[float] = []
    client = HyperliquidInfoClient(
        network="custom", base_url=f"http://127.0.0.1:{free_port()}", timeout_s=2, sleep=sleeps.append
    )
    with client, pytest.raises(RequestFailed, match="ConnectError"):
        client.all_mids()
    assert sleeps == [1.0, 2.0]


def test_429_is_rate_limited_not_retried_and_rotates_the_proxy() -> None:
    sleeps: list[float] = []
    with InfoServer(static("Too many requests", status=429)) as server:
        client = client_for(
            server,
            sleep=sleeps.append,
            proxies=[f"{server.url}/p0/", f"{server.url}/p1/"],
            origin="https://app.x",
        )
        with client:
            with pytest.raises(RateLimited):
                client.all_mids()
            assert client.proxy_index == 1
            with pytest.raises(RateLimited):
                client.all_mids()
            assert client.proxy_index == 0
    assert sleeps == []
    target = f"{server.url}/info"
    assert [r.path for r in server.requests] == [f"/p0/{target}", f"/p1/{target}"]
    assert all(r.headers.get("origin") == "https://app.x" for r in server.requests)


def test_rate_limit_text_counts_as_429() -> None:
    with (
        InfoServer(static("rate limit exceeded", status=400)) as server,
        client_for(server) as client,
        pytest.raises(RateLimited),
    ):
        client.all_mids()


def test_circuit_breaker_opens_after_five_failed_reads_and_half_opens() -> None:
    clock = ManualClock(1000.0)
    replies: list[Reply] = [(500, "down")] * 6
    with InfoServer(scripted(replies, (200, {"BTC": "1"}))) as server:
        client = client_for(
            server,
            read_attempts=1,
            monotonic=clock.monotonic,
            proxies=[f"{server.url}/a/", f"{server.url}/b/"],
            origin="https://o",
        )
        with client:
            for _ in range(5):
                with pytest.raises(RequestFailed):
                    client.all_mids()
            assert client.proxy_index == 1  # opening rotated the proxy
            with pytest.raises(CircuitOpen):
                client.all_mids()
            assert len(server.requests) == 5  # nothing sent while open
            clock.advance(60.0)
            with pytest.raises(RequestFailed):  # the half-open trial fails: open again at once
                client.all_mids()
            with pytest.raises(CircuitOpen):
                client.all_mids()
            clock.advance(60.0)
            assert client.all_mids() == {"BTC": Decimal("1")}
            assert client.all_mids() == {"BTC": Decimal("1")}
    assert len(server.requests) == 8


def test_bodies_are_compact_json_posts() -> None:
    with InfoServer(static({})) as server, client_for(server) as client:
        client.all_mids()
    assert server.requests[0].headers["content-type"] == "application/json"
    assert json.dumps(server.requests[0].body) == '{"type": "allMids"}'
