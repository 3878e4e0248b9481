"""A small synchronous client for Hyperliquid's public `POST /info` (services.md §6, §7.3).

The price feed, the OHLCV fetch and `3t data fetch` only need public reads, so they do not pay for ccxt.
Every response is checked against the shape we rely on: a field that is missing or not a finite number
raises `UnexpectedResponse` naming the request and the field, because a wrong price is worse than none.

Proxy rules (§6.3): a request to URL U goes to `prefix + U`; `Origin` is sent only through a proxy; the
proxy index advances when the circuit breaker opens or a 429 arrives. Reads are retried on network errors
and 5xx (§7.3); a 429 is never retried here but surfaced as `RateLimited`, because the caller owns the
back-off policy (the feed doubles its delay, the fetch job skips).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ttt.errors import TTTError

if TYPE_CHECKING:
    from ttt.config.models import Hyperliquid as HyperliquidSettings
    from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

Network = Literal["mainnet", "testnet", "custom"]

MAINNET_URL = "https://api.hyperliquid.xyz"
TESTNET_URL = "https://api.hyperliquid-testnet.xyz"
MAINNET_WS_URL = "wss://api.hyperliquid.xyz/ws"
TESTNET_WS_URL = "wss://api.hyperliquid-testnet.xyz/ws"

CANDLE_LIMIT = 5000
"""Bars per candleSnapshot answer (services.md §6.1); longer windows are requested in chunks."""

_INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
_RATE_LIMIT_TEXT = re.compile(r"rate[ _-]?limit|too many requests", re.IGNORECASE)


class HyperliquidError(TTTError):
    """A Hyperliquid read did not give a usable answer; callers hold rather than guess."""


class RateLimited(HyperliquidError):
    """HTTP 429 or a rate-limit text: the caller backs off (feed) or skips (fetch job)."""


class RequestFailed(HyperliquidError):
    """Network error, timeout or a non-2xx status after the retries."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CircuitOpen(HyperliquidError):
    """Too many consecutive failures; no request is sent until the breaker half-opens."""


class UnexpectedResponse(HyperliquidError):
    """The answer does not have the shape we rely on."""


def interval_ms(interval: str) -> int:
    """Length of a Hyperliquid candle interval; `1M` is refused because months have no fixed length."""
    try:
        return _INTERVAL_MS[interval]
    except KeyError:
        raise HyperliquidError(
            f"timeframe {interval!r} is not a fixed-length Hyperliquid interval "
            f"(one of {', '.join(_INTERVAL_MS)})"
        ) from None


def base_url_for(network: Network, base_url: str | None = None) -> str:
    if network == "mainnet":
        return MAINNET_URL
    if network == "testnet":
        return TESTNET_URL
    if not base_url:
        raise HyperliquidError("exchange.hyperliquid.base_url is required when network is custom")
    return base_url.rstrip("/")


def ws_url_for(network: Network, ws_url: str | None = None) -> str:
    if network == "mainnet":
        return MAINNET_WS_URL
    if network == "testnet":
        return TESTNET_WS_URL
    if not ws_url:
        raise HyperliquidError(
            "exchange.hyperliquid.ws_url is required for websocket prices on network custom"
        )
    return ws_url


# -- parsed answers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candle:
    ts_open: int
    ts_close: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int


@dataclass(frozen=True)
class FundingRate:
    time_ms: int
    rate: Decimal
    premium: Decimal | None


@dataclass(frozen=True)
class AssetContext:
    coin: str
    funding: Decimal
    mark_px: Decimal | None
    mid_px: Decimal | None
    oracle_px: Decimal | None
    raw: Mapping[str, Any]


def _decimal(value: Any, where: str) -> Decimal:
    """A finite decimal from Hyperliquid's number-as-string (ints accepted); anything else is an error."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UnexpectedResponse(f"{where}: expected a number, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise UnexpectedResponse(f"{where}: expected a number, got {value!r}") from None
    if not number.is_finite():
        raise UnexpectedResponse(f"{where}: expected a finite number, got {value!r}")
    return number


def _float(value: Any, where: str) -> float:
    number = float(_decimal(value, where))
    if not math.isfinite(number):
        raise UnexpectedResponse(f"{where}: {value!r} does not fit a float")
    return number


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnexpectedResponse(f"{where}: expected an integer, got {value!r}")
    return int(value)


def _field(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise UnexpectedResponse(f"{where}: field {key!r} is missing")
    return obj[key]


def _optional_decimal(obj: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    value = obj.get(key)
    return None if value is None else _decimal(value, f"{where}.{key}")


# -- the client ----------------------------------------------------------------------------------------


class HyperliquidInfoClient:
    """Public reads of `POST /info`. Thread-safe: the fetch job shares one client between its workers."""

    exchange_label = "hyperliquid"

    def __init__(
        self,
        *,
        network: Network = "mainnet",
        base_url: str | None = None,
        proxies: Sequence[str] = (),
        origin: str | None = None,
        timeout_s: float = 10.0,
        read_attempts: int = 3,
        retry_delays_s: Sequence[float] = (1.0, 2.0),
        breaker_failures: int = 5,
        breaker_reset_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if isinstance(proxies, str):
            raise HyperliquidError(
                "exchange.hyperliquid.proxies must be a list of URL prefixes, not a string"
            )
        if proxies and not origin:
            raise HyperliquidError("exchange.hyperliquid.origin is required when proxies are configured")
        if read_attempts < 1:
            raise HyperliquidError("read attempts must be at least 1")
        self.info_url = base_url_for(network, base_url) + "/info"
        self.proxies = tuple(proxies)
        self.origin = origin
        self.read_attempts = read_attempts
        self.retry_delays_s = tuple(retry_delays_s) or (1.0,)
        self.breaker_failures = breaker_failures
        self.breaker_reset_s = breaker_reset_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._metrics = metrics
        self._lock = threading.Lock()
        self._proxy_index = 0
        self._failures = 0
        self._open_until: float | None = None
        self._trial = False
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    @classmethod
    def from_settings(cls, settings: HyperliquidSettings, **overrides: Any) -> HyperliquidInfoClient:
        """Build from `exchange.hyperliquid`; the attempt count follows `read_retries` (§7.3: three)."""
        kwargs: dict[str, Any] = {
            "network": settings.network,
            "base_url": settings.base_url,
            "proxies": list(settings.proxies),
            "origin": settings.origin,
            "timeout_s": settings.timeout_s,
            "read_attempts": max(1, settings.read_retries),
            "breaker_failures": settings.circuit_breaker.failures,
            "breaker_reset_s": settings.circuit_breaker.reset_s,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HyperliquidInfoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- proxies and the breaker ---------------------------------------------------------------------

    @property
    def proxy_index(self) -> int:
        return self._proxy_index

    @property
    def uses_proxy(self) -> bool:
        return bool(self.proxies)

    def rotate_proxy(self) -> None:
        with self._lock:
            if self.proxies:
                self._proxy_index = (self._proxy_index + 1) % len(self.proxies)

    def _target(self) -> tuple[str, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        if not self.proxies:
            return self.info_url, headers
        assert self.origin is not None
        headers["Origin"] = self.origin
        return self.proxies[self._proxy_index] + self.info_url, headers

    def _check_breaker(self, what: str) -> None:
        with self._lock:
            if self._open_until is None:
                return
            if self._trial or self._monotonic() < self._open_until:
                raise CircuitOpen(f"{what}: Hyperliquid circuit breaker is open after repeated failures")
            self._trial = True  # half-open: this call is the single trial

    def _record(self, ok: bool) -> None:
        """Close the breaker on an answer; open it after `breaker_failures` consecutive failed reads,
        or at once when the half-open trial fails. Opening rotates the proxy (§6.3)."""
        with self._lock:
            trial, self._trial = self._trial, False
            if ok:
                self._failures = 0
                if self._open_until is not None:
                    self._open_until = None
                    self._set_breaker_gauge(0)
                return
            self._failures += 1
            if trial or (self._failures >= self.breaker_failures and self._open_until is None):
                self._open_until = self._monotonic() + self.breaker_reset_s
                if self.proxies:
                    self._proxy_index = (self._proxy_index + 1) % len(self.proxies)
                self._set_breaker_gauge(1)
                log.warning("Hyperliquid circuit breaker opened for %.0f s", self.breaker_reset_s)

    def _set_breaker_gauge(self, value: int) -> None:
        if self._metrics is not None:
            self._metrics.exchange_circuit_open.labels(exchange=self.exchange_label).set(value)

    def _count(self, operation: str, result: str, seconds: float) -> None:
        if self._metrics is None:
            return
        self._metrics.exchange_requests_total.labels(
            exchange=self.exchange_label, operation=operation, result=result
        ).inc()
        self._metrics.exchange_request_seconds.labels(
            exchange=self.exchange_label, operation=operation
        ).observe(seconds)

    # -- the one request primitive -------------------------------------------------------------------

    def post_info(self, body: Mapping[str, Any]) -> Any:
        """POST one /info body and return the decoded JSON, with the retry and breaker rules of §7.3."""
        operation = str(body.get("type", "info"))
        what = f"/info {operation}"
        self._check_breaker(what)
        try:
            return self._send(body, operation, what)
        except HyperliquidError:
            raise
        except BaseException:
            with self._lock:
                self._trial = False  # an unexpected local error must not leave the breaker half-open
            raise

    def _send(self, body: Mapping[str, Any], operation: str, what: str) -> Any:
        payload = json.dumps(body, separators=(",", ":"))
        last_error: HyperliquidError | None = None
        for attempt in range(self.read_attempts):
            if attempt:
                delay = self.retry_delays_s[min(attempt - 1, len(self.retry_delays_s) - 1)]
                self._sleep(delay)
            url, headers = self._target()
            started = self._monotonic()
            try:
                response = self._http.post(url, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                last_error = RequestFailed(f"{what}: {type(exc).__name__}: {exc}")
                self._count(operation, "network_error", self._monotonic() - started)
                continue
            elapsed = self._monotonic() - started
            status = response.status_code
            if status == 429 or (status >= 400 and _RATE_LIMIT_TEXT.search(response.text or "")):
                self._count(operation, "rate_limited", elapsed)
                self.rotate_proxy()
                # A 429 is an answer, not a failure of the venue: it closes rather than feeds the breaker.
                self._record(True)
                raise RateLimited(f"{what}: rate limited (HTTP {status})")
            if status >= 500:
                last_error = RequestFailed(f"{what}: HTTP {status}: {response.text[:200]}", status)
                self._count(operation, "server_error", elapsed)
                continue
            if status != 200:
                self._count(operation, "rejected", elapsed)
                self._record(False)
                raise RequestFailed(f"{what}: HTTP {status}: {response.text[:200]}", status)
            try:
                data = response.json()
            except ValueError:
                self._count(operation, "bad_json", elapsed)
                self._record(False)
                raise UnexpectedResponse(f"{what}: answer is not JSON: {response.text[:200]!r}") from None
            if isinstance(data, str) and _RATE_LIMIT_TEXT.search(data):
                self._count(operation, "rate_limited", elapsed)
                self.rotate_proxy()
                self._record(True)
                raise RateLimited(f"{what}: rate limited ({data[:100]})")
            self._count(operation, "ok", elapsed)
            self._record(True)
            return data
        self._record(False)
        assert last_error is not None
        raise last_error

    # -- typed reads ---------------------------------------------------------------------------------

    def all_mids(self, dex: str | None = None) -> dict[str, Decimal]:
        """{coin: mid} of the main dex, or of one HIP-3 dex."""
        body: dict[str, Any] = {"type": "allMids"}
        if dex:
            body["dex"] = dex
        where = f"allMids{f' dex {dex!r}' if dex else ''}"
        data = self.post_info(body)
        if not isinstance(data, dict):
            raise UnexpectedResponse(f"{where}: expected a JSON object, got {type(data).__name__}")
        return {str(coin): _decimal(mid, f"{where}[{coin!r}]") for coin, mid in data.items()}

    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> list[Candle]:
        """Bars whose open lies in [start_ms, end_ms], ascending, requested in chunks of ≤ 5000 bars.

        The window start is aligned down to the interval so every chunk asks for exactly the bars it
        can hold; a bar returned twice (chunk edges) is kept once.
        """
        step = interval_ms(interval)
        if end_ms < start_ms:
            return []
        first = start_ms - start_ms % step
        out: dict[int, Candle] = {}
        chunk_start = first
        while chunk_start <= end_ms:
            chunk_end = min(chunk_start + CANDLE_LIMIT * step - 1, end_ms)
            body = {
                "type": "candleSnapshot",
                "req": {"coin": coin, "interval": interval, "startTime": chunk_start, "endTime": chunk_end},
            }
            where = f"candleSnapshot {coin} {interval} [{chunk_start}, {chunk_end}]"
            data = self.post_info(body)
            if not isinstance(data, list):
                raise UnexpectedResponse(f"{where}: expected a JSON array, got {type(data).__name__}")
            for i, row in enumerate(data):
                candle = _parse_candle(row, coin, interval, f"{where} bar {i}")
                if first <= candle.ts_open <= end_ms:
                    out[candle.ts_open] = candle
            chunk_start += CANDLE_LIMIT * step
        return [out[t] for t in sorted(out)]

    def funding_history(self, coin: str, start_ms: int, end_ms: int | None = None) -> list[FundingRate]:
        """Funding rates with time in [start_ms, end_ms], ascending; paged by time until no new rows."""
        out: dict[int, FundingRate] = {}
        cursor = start_ms
        while True:
            body: dict[str, Any] = {"type": "fundingHistory", "coin": coin, "startTime": cursor}
            if end_ms is not None:
                body["endTime"] = end_ms
            where = f"fundingHistory {coin} from {cursor}"
            data = self.post_info(body)
            if not isinstance(data, list):
                raise UnexpectedResponse(f"{where}: expected a JSON array, got {type(data).__name__}")
            newest = cursor - 1
            for i, row in enumerate(data):
                item = _parse_funding(row, coin, f"{where} row {i}")
                if item.time_ms >= start_ms and (end_ms is None or item.time_ms <= end_ms):
                    out[item.time_ms] = item
                newest = max(newest, item.time_ms)
            if not data or newest < cursor or (end_ms is not None and newest >= end_ms):
                break
            cursor = newest + 1
        return [out[t] for t in sorted(out)]

    def meta_and_asset_ctxs(self, dex: str | None = None) -> list[AssetContext]:
        """Per-coin contexts (funding is the hourly rate, §6.6), paired with the universe by position."""
        body: dict[str, Any] = {"type": "metaAndAssetCtxs"}
        if dex:
            body["dex"] = dex
        where = f"metaAndAssetCtxs{f' dex {dex!r}' if dex else ''}"
        data = self.post_info(body)
        if not (isinstance(data, list) and len(data) == 2):
            raise UnexpectedResponse(f"{where}: expected a [meta, contexts] pair")
        meta, ctxs = data
        universe = meta.get("universe") if isinstance(meta, dict) else None
        if not isinstance(universe, list) or not isinstance(ctxs, list):
            raise UnexpectedResponse(f"{where}: expected meta.universe and a list of contexts")
        if len(universe) != len(ctxs):
            raise UnexpectedResponse(
                f"{where}: {len(universe)} universe entries but {len(ctxs)} contexts; cannot pair them"
            )
        out: list[AssetContext] = []
        for i, (asset, ctx) in enumerate(zip(universe, ctxs, strict=True)):
            at = f"{where} asset {i}"
            if not isinstance(asset, dict) or not isinstance(ctx, dict):
                raise UnexpectedResponse(f"{at}: expected objects")
            name = _field(asset, "name", at)
            if not isinstance(name, str) or not name:
                raise UnexpectedResponse(f"{at}: name {name!r} is not a coin name")
            at = f"{where} {name}"
            out.append(
                AssetContext(
                    coin=name,
                    funding=_decimal(_field(ctx, "funding", at), f"{at}.funding"),
                    mark_px=_optional_decimal(ctx, "markPx", at),
                    mid_px=_optional_decimal(ctx, "midPx", at),
                    oracle_px=_optional_decimal(ctx, "oraclePx", at),
                    raw=dict(ctx),
                )
            )
        return out


def _parse_candle(row: Any, coin: str, interval: str, where: str) -> Candle:
    if not isinstance(row, dict):
        raise UnexpectedResponse(f"{where}: expected an object, got {row!r}")
    symbol = row.get("s")
    if symbol is not None and str(symbol).lower() != coin.lower():
        raise UnexpectedResponse(f"{where}: bar is for {symbol!r}, asked for {coin!r}")
    got_interval = row.get("i")
    if got_interval is not None and got_interval != interval:
        raise UnexpectedResponse(f"{where}: bar interval {got_interval!r}, asked for {interval!r}")
    ts_open = _int(_field(row, "t", where), f"{where}.t")
    candle = Candle(
        ts_open=ts_open,
        ts_close=_int(row.get("T", ts_open + interval_ms(interval) - 1), f"{where}.T"),
        open=_float(_field(row, "o", where), f"{where}.o"),
        high=_float(_field(row, "h", where), f"{where}.h"),
        low=_float(_field(row, "l", where), f"{where}.l"),
        close=_float(_field(row, "c", where), f"{where}.c"),
        volume=_float(_field(row, "v", where), f"{where}.v"),
        trades=_int(row.get("n", 0), f"{where}.n"),
    )
    if not (candle.low <= min(candle.open, candle.close) and max(candle.open, candle.close) <= candle.high):
        raise UnexpectedResponse(
            f"{where}: inconsistent bar o={row['o']} h={row['h']} l={row['l']} c={row['c']}"
        )
    return candle


def _parse_funding(row: Any, coin: str, where: str) -> FundingRate:
    if not isinstance(row, dict):
        raise UnexpectedResponse(f"{where}: expected an object, got {row!r}")
    got = row.get("coin")
    if got is not None and str(got).lower() != coin.lower():
        raise UnexpectedResponse(f"{where}: rate is for {got!r}, asked for {coin!r}")
    return FundingRate(
        time_ms=_int(_field(row, "time", where), f"{where}.time"),
        rate=_decimal(_field(row, "fundingRate", where), f"{where}.fundingRate"),
        premium=_optional_decimal(row, "premium", where),
    )
