"""The reconciliation hook behind random_vote (§10.4): only the sign of Σdir changes; Flat stays Flat."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.reconcile.rc_support import BTC, ETH, build_scenario
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.domain.results import Flat, Value

CYCLE = "sched:20260101T120000Z"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url, pool_size=5)
    upgrade(eng)
    yield eng
    eng.dispose()


def _desired(result: object, symbol: str) -> object:
    record = result.record(symbol)  # type: ignore[attr-defined]
    assert record.desired is not None
    return record.desired.result


def test_vote_flips_only_the_sign_and_sees_cycle_and_symbol(engine: Engine) -> None:
    sc = build_scenario(engine)  # both symbols: Σdir = 4, and the account already holds what they want
    calls: list[tuple[str, str]] = []

    def vote(cycle_id: str, symbol: str) -> int:
        calls.append((cycle_id, symbol))
        return -1 if symbol == BTC else 1

    plain = sc.service().run_cycle(CYCLE, dry_run=True)
    voted = sc.service(direction_vote=vote).run_cycle(CYCLE, dry_run=True)
    base_btc, base_eth = _desired(plain, BTC), _desired(plain, ETH)
    assert isinstance(base_btc, Value) and base_btc.value > 0
    assert _desired(voted, BTC) == Value(-base_btc.value)  # same magnitude, opposite sign
    assert _desired(voted, ETH) == base_eth
    assert sorted(calls) == [(CYCLE, BTC), (CYCLE, ETH)]


def test_flat_stays_flat_whatever_the_vote(engine: Engine) -> None:
    sc = build_scenario(engine, btc_dirs=())  # no BTC runs: the strategy is Flat(no_qualifying_runs)
    voted = sc.service(direction_vote=lambda _c, _s: -1).run_cycle(CYCLE, dry_run=True)
    assert _desired(voted, BTC) == Flat("no_qualifying_runs")
