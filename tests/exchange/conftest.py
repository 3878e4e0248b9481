"""A real `3t sim-exchange` on 127.0.0.1 (uvicorn in a thread, free port) for the exchange tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account

from ttt.api.sim_exchange import SimSettings, SimState, create_app

# Fixed test keys (never funded anywhere): the wallet, an approved agent and a stranger.
WALLET_KEY = "0x" + "11" * 32
AGENT_KEY = "0x" + "22" * 32
STRANGER_KEY = "0x" + "33" * 32
WALLET = Account.from_key(WALLET_KEY).address.lower()
AGENT = Account.from_key(AGENT_KEY).address.lower()
STRANGER = Account.from_key(STRANGER_KEY).address.lower()


@dataclass
class SimServer:
    url: str
    state: SimState
    settings: SimSettings

    def sim(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def info(self, body: Any) -> httpx.Response:
        return httpx.post(self.url + "/info", json=body, timeout=10)


def _start(state: SimState, settings: SimSettings) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(state, settings), log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("sim-exchange did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimServer]]:
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def make(
        *,
        network: str = "mainnet",
        verify: bool = True,
        strict: bool = False,
        balance: Decimal = Decimal(10_000),
        agents: dict[str, str] | None = None,
        rate_limit: int = 1200,
        **state_kwargs: Any,
    ) -> SimServer:
        settings = SimSettings(
            network=network,  # type: ignore[arg-type]
            verify_signatures=verify,
            strict=strict,
            test_api=True,
            rate_limit_per_min=rate_limit,
            timeout_fault_s=3.0,
        )
        state = SimState(
            wallets={WALLET: balance},
            agents=agents or {},
            prices={"BTC/USDC:USDC": Decimal(100_000), "ETH/USDC:USDC": Decimal(3000)},
            **state_kwargs,
        )
        server, thread, url = _start(state, settings)
        running.append((server, thread))
        return SimServer(url, state, settings)

    yield make
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def sim(sim_factory: Callable[..., SimServer]) -> SimServer:
    return sim_factory()
