"""`GET /ws`: the Hyperliquid websocket protocol for `trades` and `allMids` (services.md §6.3, §7.4), so
the project's live price feed runs against the simulator unchanged.

Prices are pushed, not polled: the state calls a listener on every price update (see `tape.py`), the
listener hops onto the event loop with `call_soon_threadsafe`, and the messages are rendered there against
the connection's subscriptions at that moment. Polling would merge or miss updates between two polls;
pushing gives exactly one `trades` message per coin and price update, in order, which is what a feed that
publishes "the trade with the greatest time" needs and what a test can assert. Rendering and
subscription changes both run on the loop thread, so a subscription's response always precedes its data,
and a single writer task sends everything.

A connection whose queue fills up (a client that stopped reading) is closed with code 1008 rather than
buffering without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ttt.api.sim_exchange.state import SimState
from ttt.api.sim_exchange.tape import PriceBatch

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
_CLOSE = object()

SubKey = tuple[str, str]


class WsError(Exception):
    """A message the server cannot act on: answered on the `error` channel, the connection stays open."""


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


class WsSession:
    """One websocket connection: its subscriptions and its outgoing queue."""

    def __init__(self, state: SimState, websocket: WebSocket) -> None:
        self.state = state
        self.websocket = websocket
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_LIMIT + 1)
        self.subs: dict[SubKey, int] = {}
        self.overflowed = False

    # --- from the state's thread -------------------------------------------------------------------

    def listener(self, batch: PriceBatch) -> None:
        self.loop.call_soon_threadsafe(self._render, batch)

    # --- on the loop ---------------------------------------------------------------------------------

    def _put(self, payload: Any) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
            self.queue.put_nowait(_CLOSE)
            return
        self.queue.put_nowait(_dumps(payload))

    def _render(self, batch: PriceBatch) -> None:
        for (kind, arg), since in self.subs.items():
            if batch.seq <= since:
                continue
            if kind == "trades":
                trades = [t.wire() for t in batch.trades if t.coin == arg]
                if trades:
                    self._put({"channel": "trades", "data": trades})
            elif kind == "allMids" and arg in batch.mids:
                dex_coins = set(batch.mids[arg])
                if any(t.coin in dex_coins for t in batch.trades):
                    self._put({"channel": "allMids", "data": {"mids": dict(batch.mids[arg])}})

    def _subscription(self, msg: dict[str, Any]) -> tuple[SubKey, dict[str, Any]]:
        sub = msg.get("subscription")
        if not isinstance(sub, dict):
            raise WsError(f"{msg.get('method')}: `subscription` must be an object")
        kind = sub.get("type")
        if kind == "trades":
            coin = sub.get("coin")
            if not isinstance(coin, str) or self.state.product_by_coin(coin) is None:
                raise WsError(f"trades: unknown coin {coin!r}")
            return ("trades", coin), sub
        if kind == "allMids":
            dex = sub.get("dex") or ""
            if not isinstance(dex, str) or (dex and dex not in self.state.dexes()):
                raise WsError(f"allMids: unknown dex {dex!r}")
            return ("allMids", dex), sub
        raise WsError(f"unsupported subscription type {kind!r} (the simulator serves trades and allMids)")

    def handle(self, raw: str) -> None:
        """One client message; raises WsError for anything malformed."""
        try:
            msg = json.loads(raw)
        except ValueError:
            raise WsError(f"Error parsing JSON into valid websocket request: {raw[:200]}") from None
        if not isinstance(msg, dict):
            raise WsError(f"Error parsing JSON into valid websocket request: {raw[:200]}")
        method = msg.get("method")
        if method == "ping":
            self._put({"channel": "pong"})
            return
        if method not in ("subscribe", "unsubscribe"):
            raise WsError(f"unknown method {method!r} (expected subscribe, unsubscribe or ping)")
        key, sub = self._subscription(msg)
        with self.state.lock:
            if method == "subscribe":
                if key in self.subs:
                    raise WsError(f"Already subscribed: {_dumps(sub)}")
                self.subs[key] = self.state.tape.seq
                mids = self.state.mids() if key[0] == "allMids" else None
                self.state.ws["subscriptions"] += 1
            else:
                if key not in self.subs:
                    raise WsError(f"Already unsubscribed: {_dumps(sub)}")
                del self.subs[key]
                mids = None
                self.state.ws["subscriptions"] -= 1
        self._put({"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}})
        if mids is not None:
            self._put({"channel": "allMids", "data": {"mids": mids.get(key[1], {})}})

    async def read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                data = message.get("bytes") or b""
                raw = data.decode("utf-8", errors="replace")
            try:
                self.handle(raw)
            except WsError as exc:
                self._put({"channel": "error", "data": str(exc)})

    async def write(self) -> None:
        while True:
            item = await self.queue.get()
            if item is _CLOSE:
                await self.websocket.close(code=1008, reason="client too slow: send queue full")
                return
            assert isinstance(item, str)
            await self.websocket.send_text(item)

    async def run(self) -> None:
        with self.state.lock:
            self.state.tape.add_listener(self.listener)
            self.state.ws["connections"] += 1
        reader = asyncio.create_task(self.read())
        writer = asyncio.create_task(self.write())
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            with self.state.lock:
                self.state.tape.remove_listener(self.listener)
                self.state.ws["connections"] -= 1
                self.state.ws["subscriptions"] -= len(self.subs)
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                try:
                    await task
                except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                    pass
                except Exception as exc:
                    log.warning("websocket task ended on %s: %s", type(exc).__name__, exc)
            ws = self.websocket
            if WebSocketState.CONNECTED == ws.application_state == ws.client_state:
                with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                    await self.websocket.close()


def add_websocket(app: FastAPI, state: SimState) -> None:
    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await WsSession(state, websocket).run()
