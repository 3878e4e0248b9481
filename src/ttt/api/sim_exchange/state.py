"""Everything `3t sim-exchange` remembers: the paper engine, who may sign, nonces, faults and counters.

The HTTP layer is thin; all behaviour lives here so it can be driven by tests and by the real-time
driver alike. Two clocks are kept apart on purpose: the *simulated* clock moves the market (prices,
funding, candles) and can run fast or be advanced by the test API, while the *wall* clock is what
clients put in nonces and dead-man deadlines, so those rules keep working at any replay speed.

With a database file (`--db`) the paper venue lives in the paper tables: accounts, positions, leverage
choices, orders, fills, the ledger and funding survive a restart. Agents approved by `approveAgent`,
nonces, scheduled cancels, isolated-margin records, faults and counters stay in memory and start empty
(`--agent` mappings are given again on the command line). `--wallet` funds only accounts the file does
not hold yet, so a restart never deposits twice. Prices always come from the source.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from ttt.adapters.exchange.paper import (
    DEFAULT_PRODUCTS,
    PaperConfig,
    PaperExchange,
    to_decimal,
)
from ttt.adapters.exchange.paper_sql import AtomicPaperExchange
from ttt.adapters.market.files import BarSeries
from ttt.adapters.market.replay import PriceEvent, SimClock
from ttt.adapters.market.synthetic import DEFAULT_START_PRICES
from ttt.api.sim_exchange.store import SimStore, SqlSimStore, open_sqlite
from ttt.api.sim_exchange.tape import PriceTape, SimTrade
from ttt.domain.orders import Bar, ProductMeta
from ttt.ports import Clock

FaultMode = Literal["429", "500", "timeout", "drop_after_commit"]
FAULT_MODES: tuple[str, ...] = ("429", "500", "timeout", "drop_after_commit")
NONCE_WINDOW = 100
NONCE_PAST_MS = 2 * 86_400_000
NONCE_FUTURE_MS = 86_400_000


class WallClock:
    """The machine's clock, for nonces and dead-man deadlines (never for the market)."""

    def now(self) -> float:
        return time.time()


class PriceSource(Protocol):
    """What the simulator needs from a synthetic or replay source (services.md §6.4, §6.5)."""

    symbols: tuple[str, ...]
    tick_s: float

    @property
    def clock(self) -> SimClock: ...

    def advance_to(self, t: float) -> None: ...

    def prices(self) -> list[PriceEvent]: ...

    def funding_hourly(self, symbol: str) -> float: ...

    def visible_bars(self, symbol: str) -> BarSeries: ...

    def forming_bar(self, symbol: str) -> Bar | None: ...


@dataclass(frozen=True)
class SimSettings:
    network: Literal["mainnet", "testnet"] = "mainnet"
    verify_signatures: bool = True
    strict: bool = False
    test_api: bool = False
    rate_limit_per_min: int = 1200
    timeout_fault_s: float = 30.0

    @property
    def mainnet(self) -> bool:
        return self.network == "mainnet"

    @property
    def chain_name(self) -> str:
        return "Mainnet" if self.mainnet else "Testnet"


@dataclass
class Agent:
    wallet: str
    name: str = ""
    valid_until: int | None = None


@dataclass
class Fault:
    mode: FaultMode
    seconds: float | None = None


class RateLimiter:
    """Weighted requests per client address over a sliding minute of wall time."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._spent: dict[str, deque[tuple[float, int]]] = {}

    def admit(self, client: str, weight: int, now: float) -> bool:
        window = self._spent.setdefault(client, deque())
        while window and window[0][0] <= now - 60.0:
            window.popleft()
        used = sum(w for _, w in window)
        if used + weight > self.per_minute:
            return False
        window.append((now, weight))
        return True


@dataclass
class _Initial:
    config: PaperConfig
    wallets: dict[str, Decimal]
    agents: dict[str, str]
    source_factory: Callable[[], PriceSource] | None
    start_s: float
    prices: dict[str, Decimal]
    dexes: tuple[str, ...] = field(default_factory=tuple)


class SimState:
    """One simulated venue. Every public method takes the lock: the HTTP handlers, the test API and the
    real-time driver thread all mutate it."""

    def __init__(
        self,
        config: PaperConfig | None = None,
        *,
        wallets: Mapping[str, Decimal | float | int] | None = None,
        agents: Mapping[str, str] | None = None,
        source_factory: Callable[[], PriceSource] | None = None,
        start_s: float | None = None,
        prices: Mapping[str, Decimal | float | int] | None = None,
        wall: Clock | None = None,
        db: Path | None = None,
    ) -> None:
        cfg = config or PaperConfig()
        self.wall: Clock = wall or WallClock()
        self._initial = _Initial(
            config=cfg,
            wallets={w.lower(): to_decimal(b) for w, b in (wallets or {}).items()},
            agents={a.lower(): w.lower() for a, w in (agents or {}).items()},
            source_factory=source_factory,
            start_s=float(start_s) if start_s is not None else self.wall.now(),
            prices={s: to_decimal(p) for s, p in (prices or {}).items()},
        )
        for agent, wallet in self._initial.agents.items():
            if wallet not in self._initial.wallets:
                raise ValueError(f"--agent {agent}={wallet}: the wallet is not a --wallet of this simulator")
        self.lock = threading.RLock()
        self.tape = PriceTape()
        self.ws: Counter[str] = Counter({"connections": 0, "subscriptions": 0})
        self._sql = open_sqlite(db) if db is not None else None
        self._build()

    def close(self) -> None:
        """Release the database file (a no-op in memory)."""
        if self._sql is not None:
            self._sql.dispose()

    # --- construction -------------------------------------------------------------------------------

    def _build(self) -> None:
        init = self._initial
        self.source: PriceSource | None = init.source_factory() if init.source_factory else None
        self.clock: SimClock = self.source.clock if self.source is not None else SimClock(init.start_s)
        self.products: dict[str, ProductMeta] = dict(init.config.products)
        self.store: SimStore | SqlSimStore
        if self._sql is None:
            self.store = SimStore(self.funding_rate, self.coin_of)
            self.engine = PaperExchange(
                init.config, self.clock, store=self.store, funding_rate=self.funding_rate
            )
        else:
            self.store = SqlSimStore(self._sql, self.clock, self.funding_rate, self.coin_of)
            paper = PaperExchange(init.config, self.clock, store=self.store, funding_rate=self.funding_rate)
            self.engine = cast(PaperExchange, AtomicPaperExchange(paper, self.store))
        self.wallets: list[str] = list(init.wallets)
        for wallet, balance in init.wallets.items():
            if self.store.cash(wallet) is None:
                self.engine.deposit(wallet, balance)
        self.agents: dict[str, Agent] = {a: Agent(w) for a, w in init.agents.items()}
        self.nonces: dict[str, list[int]] = {}
        self.counters: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.forbidden: Counter[str] = Counter()
        self.requests_by_wallet: Counter[str] = Counter()
        self.faults: dict[str, deque[Fault]] = {"info": deque(), "exchange": deque()}
        self.scheduled_cancel: dict[str, int] = {}
        self.isolated_margin: dict[tuple[str, str], Decimal] = {}
        self._seed_prices()

    def _seed_prices(self) -> None:
        seeded: set[str] = set()
        if self.source is not None:
            for ev in self.source.prices():
                if ev.symbol in self.products:
                    self.engine.on_price(ev.symbol, ev.price)
                    seeded.add(ev.symbol)
        for symbol in self.products:
            if symbol in seeded:
                continue
            px = self._initial.prices.get(symbol)
            if px is None:
                px = to_decimal(DEFAULT_START_PRICES.get(symbol, 100.0))
            self.engine.on_price(symbol, px)

    def coin_of(self, symbol: str) -> str:
        return self.products[symbol].api_coin

    def funding_rate(self, symbol: str, at_s: float) -> Decimal:
        if self.source is not None and symbol in self.source.symbols:
            return to_decimal(self.source.funding_hourly(symbol))
        return self._initial.config.default_funding_hourly

    def reset(self) -> None:
        """A fresh venue; with a database file its paper rows are deleted first."""
        with self.lock:
            if isinstance(self.store, SqlSimStore):
                self.store.clear()
            self._build()

    def _atomic(self) -> AbstractContextManager[None]:
        """One transaction around several engine events (each event is atomic on its own anyway)."""
        return self.store.atomic() if isinstance(self.store, SqlSimStore) else nullcontext()

    # --- identities ---------------------------------------------------------------------------------

    @property
    def default_wallet(self) -> str:
        return self.wallets[0] if self.wallets else self._initial.config.wallet

    def is_wallet(self, address: str) -> bool:
        return address.lower() in self.wallets

    def wallet_of_signer(self, signer: str) -> str | None:
        """The account a signer acts for: itself when it is a wallet, its master when it is an agent."""
        s = signer.lower()
        if s in self.wallets:
            return s
        agent = self.agents.get(s)
        if agent is None:
            return None
        if agent.valid_until is not None and agent.valid_until < self.wall_ms():
            return None
        return agent.wallet

    def approve_agent(self, wallet: str, agent: str, name: str, valid_until: int | None) -> None:
        with self.lock:
            self.agents[agent.lower()] = Agent(wallet.lower(), name, valid_until)

    def has_account(self, wallet: str) -> bool:
        return self.store.cash(wallet.lower()) is not None

    # --- time ---------------------------------------------------------------------------------------

    def wall_ms(self) -> int:
        return round(self.wall.now() * 1000)

    def sim_ms(self) -> int:
        return round(self.clock.now() * 1000)

    def check_nonce(self, signer: str, nonce: int) -> str | None:
        """None when acceptable (and then recorded), otherwise the error text."""
        now = self.wall_ms()
        if not now - NONCE_PAST_MS <= nonce <= now + NONCE_FUTURE_MS:
            return f"Invalid nonce: {nonce} is outside [{now - NONCE_PAST_MS}, {now + NONCE_FUTURE_MS}]"
        seen = self.nonces.setdefault(signer.lower(), [])
        if nonce in seen:
            return f"Invalid nonce: {nonce} was already used by {signer.lower()}"
        if len(seen) >= NONCE_WINDOW and nonce <= min(seen):
            return f"Invalid nonce: {nonce} is not greater than the smallest of the last {NONCE_WINDOW}"
        seen.append(nonce)
        if len(seen) > NONCE_WINDOW:
            seen.remove(min(seen))
        return None

    def run_dead_man(self) -> None:
        """Cancel every open order of a wallet whose scheduled cancel time has passed (wall clock)."""
        now = self.wall_ms()
        for wallet, deadline in list(self.scheduled_cancel.items()):
            if deadline > now:
                continue
            del self.scheduled_cancel[wallet]
            for order in self.store.open_orders(wallet=wallet):
                self.engine.cancel(order.symbol, oids=[order.oid], wallet=wallet)
            self.counters["scheduled_cancels_run"] += 1

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward, feeding the source's prices tick by tick."""
        if not seconds >= 0:
            raise ValueError(f"seconds must be ≥ 0, got {seconds}")
        with self.lock:
            target = self.clock.now() + seconds
            if self.source is not None:
                step = self.source.tick_s
                t = self.clock.now()
                while t + step <= target + 1e-9:
                    t += step
                    self.source.advance_to(t)
                    with self._atomic():
                        self._feed(self.source.prices())
                        self.engine.on_clock()
                if self.clock.now() < target:
                    self.source.advance_to(target)
            else:
                self.clock.set(target)
            with self._atomic():
                self.engine.on_clock()
                self.run_dead_man()

    def _feed(self, events: Iterable[PriceEvent]) -> None:
        """Price events into the engine, then onto the tape as one batch."""
        with self._prices_published() as changed:
            for ev in events:
                if ev.symbol in self.products:
                    changed.append((ev.symbol, self.engine.price(ev.symbol)))
                    self.engine.on_price(ev.symbol, ev.price)

    @contextmanager
    def _prices_published(self) -> Iterator[list[tuple[str, Decimal | None]]]:
        """Collects (symbol, price before) of the events in the block; after it, one trade per event and
        the mids go to the `/ws` listeners. Caller holds the lock."""
        changed: list[tuple[str, Decimal | None]] = []
        yield changed
        if not changed:
            return
        now_ms = self.sim_ms()
        trades: list[SimTrade] = []
        for symbol, before in changed:
            px = self.engine.price(symbol)
            if px is None:
                continue
            product = self.products[symbol]
            trades.append(self.tape.trade(product.api_coin, before, px, product.lot_size, now_ms))
        if self.tape.listening:
            self.tape.publish(tuple(trades), self.mids())

    def mids(self) -> dict[str, dict[str, str]]:
        """Every priced coin by dex ("" is the main dex): what `/info` `allMids` answers."""
        from ttt.adapters.exchange.paper import fmt_decimal

        with self.lock:
            out: dict[str, dict[str, str]] = {}
            for dex in ("", *self.dexes()):
                out[dex] = {
                    p.api_coin: fmt_decimal(px)
                    for p in self.universe(dex)
                    if (px := self.engine.price(p.symbol)) is not None
                }
            return out

    def drive(self, speed: float, stop: threading.Event, sleep: Callable[[float], None] = time.sleep) -> None:
        """Real-time driver of `3t sim-exchange`: one source tick per tick_s/speed seconds of wall time."""
        step = self.source.tick_s if self.source is not None else 1.0
        while not stop.is_set():
            sleep(step / speed)
            self.advance(step)

    # --- products and prices ------------------------------------------------------------------------

    def product_by_coin(self, coin: str) -> ProductMeta | None:
        for p in self.products.values():
            if p.api_coin == coin:
                return p
        return None

    def dexes(self) -> list[str]:
        """HIP-3 dexes in order of first appearance among the products."""
        out: list[str] = []
        for p in self.products.values():
            if ":" in p.api_coin:
                dex = p.api_coin.split(":", 1)[0]
                if dex not in out:
                    out.append(dex)
        return out

    def universe(self, dex: str = "") -> list[ProductMeta]:
        return [p for p in self.products.values() if _dex_of(p) == dex]

    def asset_id(self, product: ProductMeta) -> int:
        dex = _dex_of(product)
        index = self.universe(dex).index(product)
        if dex == "":
            return index
        return 100_000 + (self.dexes().index(dex) + 1) * 10_000 + index

    def product_by_asset(self, asset: object) -> ProductMeta | None:
        if isinstance(asset, bool) or not isinstance(asset, int):
            return None
        for p in self.products.values():
            if self.asset_id(p) == asset:
                return p
        return None

    def set_price(self, coin: str, px: Decimal | float | int | str) -> None:
        product = self.product_by_coin(coin)
        if product is None:
            raise KeyError(coin)
        with self.lock, self._prices_published() as changed:
            before = self.engine.price(product.symbol)
            self.engine.on_price(product.symbol, to_decimal(px))
            changed.append((product.symbol, before))

    # --- faults -------------------------------------------------------------------------------------

    def add_fault(self, endpoint: str, mode: str, count: int, seconds: float | None = None) -> None:
        if endpoint not in self.faults:
            raise ValueError(f"endpoint must be info or exchange, got {endpoint!r}")
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}, got {mode!r}")
        if count < 0:
            raise ValueError(f"count must be ≥ 0, got {count}")
        with self.lock:
            for _ in range(count):
                self.faults[endpoint].append(Fault(mode, seconds))  # type: ignore[arg-type]

    def take_fault(self, endpoint: str) -> Fault | None:
        with self.lock:
            queue = self.faults[endpoint]
            return queue.popleft() if queue else None

    # --- the test API's view ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        from ttt.adapters.exchange.paper import fmt_decimal

        with self.lock:
            accounts: dict[str, Any] = {}
            for wallet in self.store.wallets():
                accounts[wallet] = {
                    "cash": fmt_decimal(self.store.cash(wallet) or Decimal(0)),
                    "account_value": fmt_decimal(self.engine.account_value(wallet)),
                    "positions": [
                        {"coin": self.products[p.symbol].api_coin, "szi": fmt_decimal(p.size)}
                        for p in self.store.positions(wallet)
                    ],
                }
            orders = [
                {
                    "oid": o.oid,
                    "cloid": o.cloid,
                    "wallet": o.wallet,
                    "coin": self.products[o.symbol].api_coin,
                    "side": o.side,
                    "px": fmt_decimal(o.price),
                    "sz": fmt_decimal(o.size),
                    "tif": o.tif,
                    "reduce_only": o.reduce_only,
                    "status": o.status,
                    "error": o.error_text,
                }
                for o in self.store.all_orders()
            ]
            counters = dict(self.counters)
            counters["forbidden_actions"] = sum(self.forbidden.values())
            counters.setdefault("orders_with_builder", 0)
            return {
                "time_ms": self.sim_ms(),
                "wall_ms": self.wall_ms(),
                "prices": {
                    self.products[s].api_coin: fmt_decimal(px)
                    for s in self.products
                    if (px := self.engine.price(s)) is not None
                },
                "accounts": accounts,
                "agents": {a: {"wallet": g.wallet, "name": g.name} for a, g in self.agents.items()},
                "orders": orders,
                "counters": counters,
                "forbidden_by_action": dict(self.forbidden),
                "actions": dict(self.actions),
                "scheduled_cancel": dict(self.scheduled_cancel),
                "ws": dict(self.ws),
            }


def _dex_of(product: ProductMeta) -> str:
    return product.api_coin.split(":", 1)[0] if ":" in product.api_coin else ""


def default_products(symbols: Sequence[str] | None = None) -> dict[str, ProductMeta]:
    if symbols is None:
        return dict(DEFAULT_PRODUCTS)
    return {s: DEFAULT_PRODUCTS[s] for s in symbols}
