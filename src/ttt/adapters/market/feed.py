"""The live Hyperliquid price feed (services.md §6.3) and the price record every consumer reads (§5).

Prices live in `price:{symbol}` with a TTL of `max_age_s`, so a feed that dies makes them *unavailable*
rather than stale-but-present; consumers also apply their own max-age to `ts` (`read_price`). A price is
never re-published with a fresh timestamp: a mid carries the time it was read, a trade its trade time,
and a record already older than `max_age_s` is not published at all.

The feed runs in its own thread. Every wait goes through the injectable `sleep` (by default a wait on the
stop event), so `stop()` ends it promptly and tests can record the back-off delays the feed chose instead
of timing it. Time comes from the injected `Clock`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from ttt.adapters.market.hyperliquid_http import (
    HyperliquidError,
    HyperliquidInfoClient,
    RateLimited,
    ws_url_for,
)
from ttt.domain.symbols import coin_dex, derive_api_coin, is_hip3
from ttt.ports import Cache, Clock, LockManager

if TYPE_CHECKING:
    from ttt.config.models import Config
    from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

PriceSource = Literal["ws_trade", "poll_mid", "replay", "synthetic"]
Transport = Literal["websocket", "polling"]

PRICES_STREAM = "stream:prices"
FEED_LOCK = "feed"
FEED_LOCK_TTL_S = 30.0
FEED_LOCK_EXTEND_S = 10.0
HEARTBEAT_PERIOD_S = 10.0
WS_PING_INTERVAL_S = 50.0
WS_MAX_BACKOFF_S = 30.0
POLL_BACKOFF_START_S = 2.0
POLL_MAX_BACKOFF_S = 60.0
_RECV_SLICE_S = 0.5


def price_key(symbol: str) -> str:
    return f"price:{symbol}"


def resolve_transport(mode: str, proxies: Sequence[str]) -> Transport:
    """`auto` polls when proxies are configured, because websockets cannot traverse URL-prefix proxies."""
    if mode == "auto":
        return "polling" if proxies else "websocket"
    if mode in ("websocket", "polling"):
        return mode  # type: ignore[return-value]
    raise ValueError(f"market_data.price.mode {mode!r}: expected auto, websocket or polling")


# -- the record and its consumer rule ------------------------------------------------------------------


@dataclass(frozen=True)
class PriceRecord:
    price: float
    ts: float
    source: str

    def to_json(self) -> str:
        return json.dumps({"price": self.price, "ts": self.ts, "source": self.source}, separators=(",", ":"))


def decode_price(raw: bytes | str, where: str) -> PriceRecord:
    """The stored JSON, validated; a malformed record raises ValueError naming the key."""
    try:
        doc = json.loads(raw)
        price, ts, source = float(doc["price"]), float(doc["ts"]), str(doc["source"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: malformed price record {raw!r} ({exc})") from None
    if not (math.isfinite(price) and price > 0 and math.isfinite(ts)):
        raise ValueError(f"{where}: price record {raw!r} has a non-positive or non-finite value")
    return PriceRecord(price, ts, source)


def read_price(cache: Cache, symbol: str, now: float, max_age_s: float) -> PriceRecord | None:
    """The consumer's rule: a price exists only while its key exists and now − ts ≤ max_age_s.

    A malformed record is treated as no price (hold), and logged, never as a number.
    """
    raw = cache.get(price_key(symbol))
    if raw is None:
        return None
    try:
        record = decode_price(raw, price_key(symbol))
    except ValueError as exc:
        log.error("%s", exc)
        return None
    return record if now - record.ts <= max_age_s else None


class PricePublisher:
    """SET `price:{symbol}` with TTL, then XADD `stream:prices` (§6.3 Publishing)."""

    def __init__(
        self,
        cache: Cache,
        clock: Clock,
        *,
        max_age_s: float = 60.0,
        stream_maxlen: int = 10_000,
        metrics: Metrics | None = None,
    ) -> None:
        self.cache = cache
        self.clock = clock
        self.max_age_s = max_age_s
        self.stream_maxlen = stream_maxlen
        self.metrics = metrics

    def publish(self, symbol: str, price: float, ts: float, source: str) -> bool:
        """Store one price; returns False when it was dropped (invalid, too old, or older than stored)."""
        if not (math.isfinite(price) and price > 0 and math.isfinite(ts)):
            log.warning("price for %s dropped: price %r at ts %r is not usable", symbol, price, ts)
            return False
        now = self.clock.now()
        if now - ts > self.max_age_s:
            return False
        key = price_key(symbol)
        stored = self.cache.get(key)
        if stored is not None:
            try:
                if decode_price(stored, key).ts > ts:
                    return False
            except ValueError as exc:
                log.warning("%s; overwriting it", exc)
        record = PriceRecord(price, ts, source)
        self.cache.set(key, record.to_json(), self.max_age_s)
        self.cache.xadd(
            PRICES_STREAM,
            {"symbol": symbol, "price": repr(price), "ts": repr(ts), "source": source},
            self.stream_maxlen,
        )
        if self.metrics is not None:
            self.metrics.price_updates_total.labels(symbol=symbol, source=source).inc()
            self.metrics.price_age_seconds.labels(symbol=symbol).set(max(0.0, now - ts))
        return True


# -- the feed --------------------------------------------------------------------------------------------


class _LostLock(Exception):
    pass


def _positive_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number > 0 else None


class PriceFeed:
    """Publishes live Hyperliquid prices for the universe until stopped.

    `coins` maps each universe symbol to its API coin. Native coins are followed by `trades` over the
    websocket; HIP-3 coins (and natives that fell silent) are filled in from `allMids` polls.
    """

    def __init__(
        self,
        *,
        cache: Cache,
        clock: Clock,
        coins: Mapping[str, str],
        transport: Transport,
        client: HyperliquidInfoClient | None = None,
        ws_url: str | None = None,
        poll_interval_s: float = 1.0,
        ws_stale_s: float = 60.0,
        ws_gap_poll_s: float = 15.0,
        max_age_s: float = 60.0,
        ping_interval_s: float = WS_PING_INTERVAL_S,
        stream_maxlen: int = 10_000,
        hip3_dexes: Sequence[str] = (),
        metrics: Metrics | None = None,
        sleep: Callable[[float], None] | None = None,
        locks: LockManager | None = None,
        instance: str = "feed",
        market_source: str = "hyperliquid",
        ws_open_timeout_s: float = 10.0,
    ) -> None:
        if transport == "websocket" and not ws_url:
            raise ValueError("the websocket transport needs a ws_url")
        if transport == "polling" and client is None:
            raise ValueError("the polling transport needs an HTTP client")
        self.cache = cache
        self.clock = clock
        self.coins = dict(coins)
        self.transport = transport
        self.client = client
        self.ws_url = ws_url
        self.poll_interval_s = poll_interval_s
        self.ws_stale_s = ws_stale_s
        self.ws_gap_poll_s = ws_gap_poll_s
        self.ping_interval_s = ping_interval_s
        self.ws_open_timeout_s = ws_open_timeout_s
        self.locks = locks
        self.instance = instance
        self.market_source = market_source
        self.publisher = PricePublisher(
            cache, clock, max_age_s=max_age_s, stream_maxlen=stream_maxlen, metrics=metrics
        )
        self.native = {s: c for s, c in self.coins.items() if not is_hip3(c)}
        self.hip3 = {s: c for s, c in self.coins.items() if is_hip3(c)}
        self.dexes = sorted({d.lower() for d in hip3_dexes} | {coin_dex(c) for c in self.hip3.values()})
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._thread: threading.Thread | None = None
        self._last_update: dict[str, float] = {}
        self._token: str | None = None
        self._next_extend = 0.0
        self._next_heartbeat = 0.0
        self._state = "starting"
        self.error: BaseException | None = None
        self._owns_client = False

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        cache: Cache,
        clock: Clock,
        api_coins: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> PriceFeed:
        """Wire the feed from `exchange.hyperliquid` and `market_data.price`; `api_coins` comes from the
        products table when it is known (portfolio.md §0), otherwise coins are derived from symbols."""
        hl = config.exchange.hyperliquid
        price = config.market_data.price
        known = api_coins or {}
        coins = {s: known.get(s) or derive_api_coin(s) for s in config.universe.symbols}
        transport = resolve_transport(price.mode, hl.proxies)
        client = kwargs.get("client") or HyperliquidInfoClient.from_settings(hl)
        defaults: dict[str, Any] = {
            "coins": coins,
            "transport": transport,
            "client": client,
            "ws_url": ws_url_for(hl.network, hl.ws_url) if transport == "websocket" else None,
            "poll_interval_s": price.poll_interval_s,
            "ws_stale_s": price.ws_stale_s,
            "ws_gap_poll_s": price.ws_gap_poll_s,
            "max_age_s": price.max_age_s,
            "stream_maxlen": config.cache.streams.prices_maxlen,
            "hip3_dexes": hl.hip3_dexes,
        }
        owns_client = "client" not in kwargs and client is not None
        defaults.update(kwargs)
        feed = cls(cache=cache, clock=clock, **defaults)
        feed._owns_client = owns_client
        return feed

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("price feed already started")
        self._thread = threading.Thread(target=self._main, name=f"price-feed-{self.instance}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Run in the calling thread until `stop()` (used by `3t feed`)."""
        self._main()

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                if self.locks is not None and not self._acquire():
                    self._state = "standby"
                    self._heartbeat(force=True)
                    self._sleep(FEED_LOCK_EXTEND_S)
                    continue
                try:
                    self._state = "running"
                    if self.transport == "websocket":
                        self._run_websocket()
                    else:
                        self._run_polling()
                except _LostLock:
                    log.warning("price feed lost lock %r; standing by", FEED_LOCK)
                finally:
                    self._release()
        except BaseException as exc:  # a crash must be visible; prices then expire by TTL
            self.error = exc
            log.exception("price feed stopped on an error")
            raise
        finally:
            self._state = "stopped"
            if self._owns_client and self.client is not None:
                self.client.close()

    # -- lock and heartbeat ------------------------------------------------------------------------

    def _acquire(self) -> bool:
        assert self.locks is not None
        self._token = self.locks.acquire(FEED_LOCK, FEED_LOCK_TTL_S)
        self._next_extend = self.clock.now() + FEED_LOCK_EXTEND_S
        return self._token is not None

    def _release(self) -> None:
        if self.locks is not None and self._token is not None:
            try:
                self.locks.release(FEED_LOCK, self._token)
            except Exception as exc:
                log.warning("could not release lock %r: %s", FEED_LOCK, exc)
        self._token = None

    def _housekeeping(self) -> None:
        now = self.clock.now()
        if self.locks is not None and self._token is not None and now >= self._next_extend:
            if not self.locks.extend(FEED_LOCK, self._token, FEED_LOCK_TTL_S):
                self._token = None
                raise _LostLock
            self._next_extend = now + FEED_LOCK_EXTEND_S
        self._heartbeat()

    def _heartbeat(self, force: bool = False) -> None:
        now = self.clock.now()
        if not force and now < self._next_heartbeat:
            return
        self._next_heartbeat = now + HEARTBEAT_PERIOD_S
        from ttt import __version__

        doc = {
            "ts": now,
            "version": __version__,
            "detail": {
                "market_source": self.market_source,
                "transport": self.transport,
                "state": self._state,
            },
        }
        try:
            self.cache.set(f"hb:feed:{self.instance}", json.dumps(doc), 3 * HEARTBEAT_PERIOD_S)
        except Exception as exc:
            log.warning("feed heartbeat not written: %s", exc)

    # -- publishing helpers ------------------------------------------------------------------------

    def _publish(self, symbol: str, price: float, ts: float, source: PriceSource) -> bool:
        if self.publisher.publish(symbol, price, ts, source):
            self._last_update[symbol] = ts
            return True
        return False

    def _symbols_for(self, coin: str, candidates: Mapping[str, str]) -> list[str]:
        """Symbols whose API coin is `coin`: exact first, else one unambiguous case-insensitive match."""
        exact = [s for s, c in candidates.items() if c == coin]
        if exact:
            return exact
        folded = [s for s, c in candidates.items() if c.lower() == coin.lower()]
        return folded if len(folded) == 1 else []

    def _mids(self, dex: str | None) -> dict[str, Decimal]:
        """allMids of one dex, keyed by full coin name (`xyz:CL` for a HIP-3 dex even if sent as `CL`)."""
        assert self.client is not None
        mids = self.client.all_mids(dex)
        if not dex:
            return mids
        return {(k if ":" in k else f"{dex}:{k}"): v for k, v in mids.items()}

    def _publish_mids(self, mids: Mapping[str, Decimal], wanted: Mapping[str, str], now: float) -> int:
        published = 0
        for symbol, coin in wanted.items():
            matches = [k for k in mids if k == coin] or [k for k in mids if k.lower() == coin.lower()]
            if len(matches) != 1:
                continue
            mid = mids[matches[0]]
            if mid <= 0:
                continue
            published += self._publish(symbol, float(mid), now, "poll_mid")
        return published

    # -- polling -----------------------------------------------------------------------------------

    def poll_once(self) -> None:
        """One polling cycle: allMids for the main dex and each HIP-3 dex; raises on any failure."""
        now = self.clock.now()
        if self.native:
            self._publish_mids(self._mids(None), self.native, now)
        for dex in self.dexes:
            wanted = {s: c for s, c in self.hip3.items() if coin_dex(c) == dex}
            if wanted:
                self._publish_mids(self._mids(dex), wanted, now)

    def _run_polling(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            self._housekeeping()
            started = self.clock.now()
            try:
                self.poll_once()
            except RateLimited as exc:
                backoff = POLL_BACKOFF_START_S if backoff == 0 else min(backoff * 2, POLL_MAX_BACKOFF_S)
                log.warning("price poll rate limited (%s); backing off %.0f s", exc, backoff)
                self._sleep(backoff)
                continue
            except HyperliquidError as exc:
                log.warning("price poll failed: %s", exc)
            else:
                backoff = 0.0
            elapsed = self.clock.now() - started
            if elapsed > self.poll_interval_s:
                log.warning(
                    "price poll cycle took %.2f s, longer than poll_interval_s %.2f s",
                    elapsed,
                    self.poll_interval_s,
                )
                continue
            self._sleep(self.poll_interval_s - elapsed)

    # -- websocket ---------------------------------------------------------------------------------

    def _subscriptions(self) -> Iterable[str]:
        for coin in dict.fromkeys(self.native.values()):
            yield json.dumps({"method": "subscribe", "subscription": {"type": "trades", "coin": coin}})

    def handle_ws_message(self, raw: str | bytes) -> bool:
        """Publish from one websocket message; True when it was subscription data (resets staleness)."""
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("websocket message is not JSON: %.200r", raw)
            return False
        if not isinstance(msg, dict) or msg.get("channel") != "trades":
            return False
        trades = msg.get("data")
        if not isinstance(trades, list):
            log.warning("trades message without a data list: %.200r", raw)
            return False
        best: dict[str, tuple[int, Decimal]] = {}
        for trade in trades:
            if not isinstance(trade, dict):
                continue
            coin, when, px = trade.get("coin"), trade.get("time"), _positive_decimal(trade.get("px"))
            if not isinstance(coin, str) or isinstance(when, bool) or not isinstance(when, int) or px is None:
                log.warning("unusable trade skipped: %.200r", trade)
                continue
            if coin not in best or when > best[coin][0]:
                best[coin] = (when, px)
        for coin, (when, px) in best.items():
            for symbol in self._symbols_for(coin, self.native):
                self._publish(symbol, float(px), when / 1000.0, "ws_trade")
        return True

    def gap_poll(self) -> None:
        """Mids for natives silent for longer than ws_gap_poll_s, and always for HIP-3 coins."""
        if self.client is None:
            return
        now = self.clock.now()
        silent = {
            s: c
            for s, c in self.native.items()
            if now - self._last_update.get(s, -math.inf) > self.ws_gap_poll_s
        }
        try:
            if silent:
                self._publish_mids(self._mids(None), silent, now)
            for dex in self.dexes:
                wanted = {s: c for s, c in self.hip3.items() if coin_dex(c) == dex}
                if wanted:
                    self._publish_mids(self._mids(dex), wanted, now)
        except HyperliquidError as exc:
            log.warning("websocket gap poll failed: %s", exc)

    def _run_websocket(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        assert self.ws_url is not None
        delay = 1.0
        while not self._stop.is_set():
            got_data = False
            try:
                with connect(
                    self.ws_url,
                    open_timeout=self.ws_open_timeout_s,
                    close_timeout=1.0,
                    ping_interval=None,
                ) as ws:
                    for sub in self._subscriptions():
                        ws.send(sub)
                    now = self.clock.now()
                    last_data, next_ping, next_gap = now, now + self.ping_interval_s, now
                    while not self._stop.is_set():
                        self._housekeeping()
                        now = self.clock.now()
                        wait = min(next_ping, next_gap, last_data + self.ws_stale_s) - now
                        try:
                            raw = ws.recv(timeout=min(max(wait, 0.0), _RECV_SLICE_S))
                        except TimeoutError:
                            raw = None
                        now = self.clock.now()
                        if raw is not None and self.handle_ws_message(raw):
                            last_data = now
                            if not got_data:
                                got_data, delay = True, 1.0
                        if now - last_data >= self.ws_stale_s:
                            log.warning(
                                "no trades for %.0f s on %s; reconnecting", now - last_data, self.ws_url
                            )
                            break
                        if now >= next_ping:
                            ws.send('{"method":"ping"}')
                            next_ping = now + self.ping_interval_s
                        if now >= next_gap:
                            self.gap_poll()
                            next_gap = now + self.ws_gap_poll_s
            except (OSError, TimeoutError, WebSocketException) as exc:
                if not self._stop.is_set():
                    log.warning("price websocket %s: %s: %s", self.ws_url, type(exc).__name__, exc)
            if self._stop.is_set():
                return
            self._sleep(delay)
            delay = min(delay * 2, WS_MAX_BACKOFF_S)
