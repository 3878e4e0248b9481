"""Supervisor cycle (providence.md §3): plan the top-up, assign shards, insert runs and apex burns at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttt.ports import Clock, LockManager, NewRun, RunStore
from ttt.providence import reference
from ttt.providence.supervisor import (
    ApexFile,
    apex_mode_active,
    load_newest_apex_file,
    needed_runs,
    plan_cycle,
)
from ttt.services.locking import run_locked

log = logging.getLogger(__name__)

SUPERVISOR_LOCK = "providence:supervisor"
SUPERVISOR_LOCK_TTL_S = 300


@dataclass(frozen=True)
class SupervisorSettings:
    symbols: Sequence[str]
    providence: Mapping[str, Any]
    shard_size: int = 2000


def assign_shards(store: RunStore, shard_size: int) -> Callable[[str], int]:
    """§18.1: the lowest-index shard of the symbol with fewer than shard_size active runs, else the next."""
    counts: dict[str, dict[int, int]] = {}

    def next_shard(symbol: str) -> int:
        shard_counts = counts.get(symbol)
        if shard_counts is None:
            shard_counts = counts[symbol] = dict(store.active_shard_counts(symbol))
        shard = 0
        while shard_counts.get(shard, 0) >= shard_size:
            shard += 1
        shard_counts[shard] = shard_counts.get(shard, 0) + 1
        return shard

    return next_shard


class SupervisorService:
    def __init__(
        self,
        store: RunStore,
        locks: LockManager,
        clock: Clock,
        settings: Callable[[], SupervisorSettings],
        max_leverage: Callable[[], Mapping[str, object]],
        rng: np.random.Generator,
        host: str,
        apex_loader: Callable[[str], tuple[ApexFile | None, str | None]] = load_newest_apex_file,
    ) -> None:
        self._store = store
        self._locks = locks
        self._clock = clock
        self._settings = settings
        self._max_leverage = max_leverage
        self._rng = rng
        self._host = host
        self._apex_loader = apex_loader

    def run(self) -> list[int]:
        """One cycle; raises LockBusy when another supervisor holds the lock. Returns the new run ids."""
        return run_locked(self._locks, SUPERVISOR_LOCK, SUPERVISOR_LOCK_TTL_S, lambda _t: self._cycle())

    def _cycle(self) -> list[int]:
        cfg = self._settings()
        counts = self._store.active_counts()
        apex: ApexFile | None = None
        burned: set[str] = set()
        if apex_mode_active(
            cfg.providence, needed_runs(int(cfg.providence.get("desired_run_count", 100)), counts)
        ):
            directory = str(Path(str(cfg.providence.get("apex_survivors_dir", "providence"))))
            apex, why = self._apex_loader(directory)
            if apex is None:
                log.warning("apex survivors unavailable, random parameters this cycle: %s", why)
            else:
                burned = self._store.burned_apex_hashes(apex.basename)
        plan = plan_cycle(
            symbols=cfg.symbols,
            counts=counts,
            max_leverage=self._max_leverage(),
            config=cfg.providence,
            rng=self._rng,
            host=self._host,
            apex=apex,
            burned=burned,
        )
        for note in plan.notes:
            log.warning("supervisor: %s", note)
        if not plan.runs:
            return []
        now = self._clock.now()
        shard_of = assign_shards(self._store, cfg.shard_size)
        rows = []
        for spec in plan.runs:
            state = reference.new_state(spec.params, start_time=now, start_balance=spec.start_balance)
            rows.append(
                NewRun(
                    symbol=spec.symbol,
                    shard=shard_of(spec.symbol),
                    seed=spec.seed,
                    start_time=now,
                    start_balance=float(spec.start_balance),
                    max_duration=int(spec.params["max_duration"]),
                    host=spec.host,
                    ann_params=spec.params,
                    run_state=state,
                    apex_file=spec.apex_file,
                    apex_hash=spec.apex_hash,
                    apex_rank=spec.apex_rank,
                )
            )
        ids = self._store.insert_runs(rows)
        log.info("supervisor created %d runs (needed %d)", len(ids), plan.needed)
        return ids
