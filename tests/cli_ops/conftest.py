"""A configured SQLite database for the ops commands, and `3t` with the `orders` and `runs` groups.

The lead registers the groups in `ttt.cli`; until then (and idempotently after) they are added here so
the tests go through `ttt.cli.main` exactly as a user would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade

WALLET = "0x00000000000000000000000000000000000000aa"


def _ensure_registered() -> None:
    from ttt.cli import app
    from ttt.cli.orders_cmd import orders_app
    from ttt.cli.runs_cmd import runs_app

    names = {
        g.name or (g.typer_instance.info.name if g.typer_instance else None) for g in app.registered_groups
    }
    if "orders" not in names:
        app.add_typer(orders_app, name="orders")
    if "runs" not in names:
        app.add_typer(runs_app, name="runs")


@dataclass
class Ops:
    engine: Engine
    config: Path

    def argv(self, *args: str) -> list[str]:
        return ["--config", str(self.config), *args]


@pytest.fixture
def ops(sqlite_url: str, tmp_path: Path) -> Iterator[Ops]:
    _ensure_registered()
    engine = make_engine(sqlite_url)
    upgrade(engine)
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        f"""
database:
  url: "{sqlite_url}"
universe:
  symbols: ["BTC/USDC:USDC", "ETH/USDC:USDC"]
exchange:
  paper:
    wallet: "{WALLET}"
"""
    )
    yield Ops(engine, cfg)
    engine.dispose()
