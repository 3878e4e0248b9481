"""`3t sim-exchange`: serve the Hyperliquid API over the paper engine (services.md §7.4).

Without `--db` the venue lives in memory and a restart starts a fresh one. With `--db PATH` it lives in
the paper tables of that SQLite file (created and migrated on start): accounts, positions, leverage,
orders, fills, ledger and funding survive a restart, and `--wallet` funds only accounts the file does
not hold yet. Not persisted: agents approved with `approveAgent` (pass them again with `--agent`),
nonces, scheduled cancels, isolated-margin records, counters and faults. `POST /_sim/reset` empties the
file. `/ws` serves the `trades` and `allMids` subscriptions from the same prices as `/info`.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from ttt.cli.context import err_console
from ttt.errors import ConfigError

_ADDRESS_LEN = 42


def _address(text: str, flag: str) -> str:
    value = text.strip().lower()
    if len(value) != _ADDRESS_LEN or not value.startswith("0x"):
        raise ConfigError([f"{flag}: {text!r} is not an address (0x followed by 40 hex characters)"])
    try:
        int(value[2:], 16)
    except ValueError:
        raise ConfigError(
            [f"{flag}: {text!r} is not an address (0x followed by 40 hex characters)"]
        ) from None
    return value


def parse_wallets(items: list[str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in items:
        addr, sep, balance = item.partition("=")
        if not sep:
            raise ConfigError([f"--wallet {item!r}: expected ADDR=BALANCE"])
        try:
            amount = Decimal(balance)
        except InvalidOperation:
            raise ConfigError([f"--wallet {item!r}: balance {balance!r} is not a number"]) from None
        if not amount.is_finite() or amount < 0:
            raise ConfigError([f"--wallet {item!r}: balance must be a finite number ≥ 0"])
        out[_address(addr, "--wallet")] = amount
    return out


def parse_agents(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        agent, sep, wallet = item.partition("=")
        if not sep:
            raise ConfigError([f"--agent {item!r}: expected AGENT=WALLET"])
        out[_address(agent, "--agent")] = _address(wallet, "--agent")
    return out


def _source_factory(source: str, data: Path | None, symbols: list[str], start_s: float) -> Any:
    if source == "synthetic":
        from ttt.adapters.market.synthetic import SyntheticSource

        return lambda: SyntheticSource(symbols, start_s=start_s, tick_s=1.0)
    if data is None:
        raise ConfigError(["--data: required with --source replay"])
    from ttt.adapters.market.files import discover
    from ttt.adapters.market.replay import ReplaySource

    dataset = discover(data, symbols=None)
    missing = [s for s in symbols if s not in dataset.bars]
    if missing:
        raise ConfigError([f"--data {data}: no 1m bars for {', '.join(missing)}"])
    bars = {s: dataset.bars[s] for s in symbols}
    return lambda: ReplaySource(bars, dataset.funding, tick_s=1.0)


def sim_exchange(
    host: Annotated[str, typer.Option("--host", help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Listen port.")] = 3001,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="SQLite file keeping accounts, positions, orders, fills and funding across restarts "
            "(not agents or nonces). Default: in memory.",
        ),
    ] = None,
    source: Annotated[str, typer.Option("--source", help="synthetic | replay")] = "synthetic",
    data: Annotated[Path | None, typer.Option("--data", help="Replay data directory or file.")] = None,
    speed: Annotated[float, typer.Option("--speed", help="Simulated seconds per wall second.")] = 1.0,
    network: Annotated[
        str, typer.Option("--network", help="mainnet | testnet (signature source).")
    ] = "mainnet",
    wallet: Annotated[list[str] | None, typer.Option("--wallet", help="ADDR=BALANCE; repeatable.")] = None,
    agent: Annotated[list[str] | None, typer.Option("--agent", help="AGENT=WALLET; repeatable.")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Accept any signature.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Reject forbidden actions.")] = False,
    test_api: Annotated[bool, typer.Option("--test-api", help="Serve /_sim (loopback only).")] = False,
) -> None:
    """Run a local Hyperliquid-compatible server (HTTP /info, /exchange and websocket /ws) over the paper
    engine; with --db the venue survives restarts."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from ttt.adapters.exchange.paper import PaperConfig
    from ttt.api.sim_exchange import SimSettings, SimState, create_app

    if source not in ("synthetic", "replay"):
        raise ConfigError([f"--source: expected synthetic or replay, got {source!r}"])
    if network not in ("mainnet", "testnet"):
        raise ConfigError([f"--network: expected mainnet or testnet, got {network!r}"])
    if not speed > 0:
        raise ConfigError([f"--speed: must be > 0, got {speed}"])
    if test_api and not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ConfigError(["--test-api: only allowed when --host is a loopback address"])
    wallets = parse_wallets(wallet or [])
    agents = parse_agents(agent or [])
    config = PaperConfig()
    symbols = list(config.products)
    start_s = time.time()
    if db is not None and db.exists() and not db.is_file():
        raise ConfigError([f"--db {db}: not a file"])
    try:
        state = SimState(
            config,
            wallets=wallets,
            agents=agents,
            source_factory=_source_factory(source, data, symbols, start_s),
            start_s=start_s,
            db=db,
        )
    except (SQLAlchemyError, OSError) as exc:
        raise ConfigError([f"--db {db}: cannot open the state database ({exc})"]) from None
    settings = SimSettings(
        network=network,  # type: ignore[arg-type]
        verify_signatures=not no_verify,
        strict=strict,
        test_api=test_api,
    )
    stop = threading.Event()
    driver = threading.Thread(target=state.drive, args=(speed, stop), name="sim-exchange-driver", daemon=True)
    driver.start()
    err_console.print(
        f"sim-exchange on http://{host}:{port} ({network}, source {source}, speed {speed}, "
        f"{len(wallets)} wallet(s), verify {'off' if no_verify else 'on'}, "
        f"state {db if db is not None else 'in memory'}; websocket at ws://{host}:{port}/ws)",
        markup=False,
    )
    try:
        uvicorn.run(create_app(state, settings), host=host, port=port, log_level="warning")
    finally:
        stop.set()
        driver.join(timeout=5)
        state.close()
