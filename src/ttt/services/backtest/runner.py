"""`3t backtest` (services.md §10): the embedded runtime at speed 0 over a replay period, then the reports.

The strategy runs through exactly the services of `3t run` on a fresh SQLite database in `--out`; the
random_vote baseline is a second such run with the reconciliation direction hook set. Everything written
to summary.json and the CSV files comes from simulated time and the data, so two runs with the same data,
configuration and seed are byte-identical; wall-clock facts go to run_info.json only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import platform
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ttt import __version__
from ttt.adapters.db import models
from ttt.adapters.market.files import parse_file_name
from ttt.config import Settings, load_settings
from ttt.errors import ConfigError, DataError
from ttt.services.backtest.baselines import BASELINES, RandomVote, buy_and_hold
from ttt.services.backtest.metrics import EquitySample, FillFacts, trading_metrics

log = logging.getLogger(__name__)

RUN_HOST = "backtest"  # the runs table's host column: a label, so outputs do not depend on the machine
STRATEGY_DB = "ttt.sqlite"
RANDOM_VOTE_DB = "baseline_random_vote.sqlite"
_USD = Decimal("0.000001")


@dataclass(frozen=True)
class BacktestRequest:
    data: Path
    out: Path | None = None
    symbols: Sequence[str] | None = None
    start: str | None = None
    end: str | None = None
    config: Path | None = None
    secrets: Path | None = None
    seed: int | None = None
    baselines: Sequence[str] | None = None
    tick_s: float | None = None


@dataclass
class RunRecording:
    samples: list[EquitySample] = field(default_factory=list)
    prices: list[dict[str, float]] = field(default_factory=list)
    fills: list[FillFacts] = field(default_factory=list)
    funding_usd: float = 0.0
    order_statuses: list[tuple[str, bool]] = field(default_factory=list)
    hold_reasons: list[str | None] = field(default_factory=list)
    epoch_kinds: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        return trading_metrics(
            self.samples,
            self.fills,
            funding_usd=self.funding_usd,
            order_statuses=self.order_statuses,
            hold_reasons=self.hold_reasons,
            epoch_kinds=self.epoch_kinds,
        )


@dataclass(frozen=True)
class BacktestResult:
    out: Path
    summary: dict[str, Any]
    run_info: dict[str, Any]


# ------------------------------------------------------------------ inputs


def _parse_time(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            [f"{option} {value!r}: expected an ISO-8601 time, e.g. 2025-01-01T00:00:00Z"]
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


def _check_request(req: BacktestRequest) -> None:
    if not req.data.exists():
        raise DataError(f"--data {req.data}: no such file or directory")
    unknown = [b for b in (req.baselines or ()) if b not in BASELINES]
    if unknown:
        raise ConfigError([f"--baselines: unknown {', '.join(unknown)} (known: {', '.join(BASELINES)})"])
    if req.tick_s is not None and not (req.tick_s > 0 and math.isfinite(req.tick_s)):
        raise ConfigError([f"--tick-s {req.tick_s}: must be > 0"])
    if req.seed is not None and req.seed < 0:
        raise ConfigError([f"--seed {req.seed}: must be ≥ 0"])


def _overrides(req: BacktestRequest, db: Path, seed: int | None) -> dict[str, Any]:
    o: dict[str, Any] = {
        "mode": "embedded",
        "exchange.kind": "paper",
        "database.url": f"sqlite:///{db}",
        "market_data.source": "replay",
        "market_data.replay.path": str(req.data),
        "market_data.replay.speed": 0,
    }
    if req.symbols:
        o["universe.symbols"] = list(req.symbols)
    if req.start is not None:
        o["market_data.replay.start"] = _parse_time(req.start, "--start")
    if req.end is not None:
        o["market_data.replay.end"] = _parse_time(req.end, "--end")
    if req.tick_s is not None:
        o["market_data.replay.tick_s"] = req.tick_s
    if seed is not None:
        o["providence.seed"] = seed
    return o


def load_backtest_settings(req: BacktestRequest, db: Path) -> tuple[Settings, int]:
    """Settings with the run seed (`--seed`, else `backtest.seed`) as `providence.seed` (§10.1)."""
    settings = load_settings(
        req.config, req.secrets, cli_overrides=_overrides(req, db, req.seed), process="run"
    )
    seed = req.seed if req.seed is not None else int(settings.config.backtest.seed)
    if req.seed is None:
        settings = load_settings(
            req.config, req.secrets, cli_overrides=_overrides(req, db, seed), process="run"
        )
    return settings, seed


def input_files(data: Path, symbols: Sequence[str]) -> list[dict[str, str]]:
    """The bar and funding files the replay source reads, each with its SHA-256."""
    files = [data] if data.is_file() else sorted(p for p in data.iterdir() if p.is_file())
    rows: list[dict[str, str]] = []
    for path in files:
        name = parse_file_name(path)
        if name is None or name.symbol not in symbols:
            continue
        if not ((name.kind == "futures" and name.timeframe == "1m") or name.kind == "funding_rate"):
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        rows.append({"file": path.name, "symbol": name.symbol, "sha256": digest.hexdigest()})
    return rows


def config_sha256(settings: Settings) -> str:
    """Hash of the effective configuration without `database.url`, which only points into `--out`."""
    doc = settings.config.model_dump(mode="json")
    doc["database"].pop("url", None)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# ------------------------------------------------------------------ one simulated run


def _usd(value: Decimal) -> str:
    return format(value.quantize(_USD), "f")


def simulate(
    settings: Settings,
    *,
    direction_vote: Callable[[str, str], int] | None = None,
    equity_rows: list[list[str]] | None = None,
) -> RunRecording:
    """Run the embedded runtime from the replay start to its end and record the equity curve."""
    from ttt.runtime.embedded import EmbeddedRuntime
    from ttt.runtime.market import MarketChoice

    cfg = settings.config
    step = float(cfg.backtest.equity_step_s)
    runtime = EmbeddedRuntime(
        settings,
        MarketChoice("replay", "forced", "backtest"),
        speed=0,
        replay_path=str(cfg.market_data.replay.path),
        host=RUN_HOST,
    )
    runtime.portfolio.reconcile.direction_vote = direction_vote
    exchange = runtime.exchange
    wallet = exchange.config.wallet
    symbols = list(cfg.universe.symbols)
    rec = RunRecording()
    next_due = [0.0]

    def sample() -> None:
        t = float(runtime.clock.now())
        cash = exchange.store.cash(wallet) or Decimal(0)
        gross = Decimal(0)
        net = Decimal(0)
        for pos in exchange.store.positions(wallet):
            price = exchange.price(pos.symbol)
            if price is None:
                continue
            gross += abs(pos.size * price)
            net += pos.size * price
        value = exchange.account_value(wallet)
        rec.samples.append(EquitySample(t, float(value), float(cash), float(gross), float(net)))
        rec.prices.append({s: float(p) for s in symbols if (p := exchange.price(s)) is not None})
        if equity_rows is not None:
            equity_rows.append([_iso(t), _usd(value), _usd(cash), _usd(gross), _usd(net)])
        next_due[0] = t + step

    def on_tick() -> None:
        if runtime.clock.now() >= next_due[0] - 1e-9:
            sample()

    runtime.start()
    try:
        sample()
        runtime.run_forever(on_tick=on_tick)
        if rec.samples[-1].ts < runtime.clock.now():
            sample()
        runtime.portfolio.gateway.run_resolver_once()
        for f in exchange.fetch_fills(0):
            rec.fills.append(FillFacts(float(abs(f.price * f.size)), float(f.fee)))
        paid = -sum((e.amount for e in exchange.ledger() if e.kind == "funding"), Decimal(0))
        rec.funding_usd = float(paid) + 0.0  # no "-0.0" in the summary
    finally:
        runtime.shutdown()
    with sa.create_engine(settings.database_url()).connect() as conn:
        o = models.OrderRecord.__table__
        for status, filled in conn.execute(sa.select(o.c.status, o.c.filled_size).order_by(o.c.id)):
            rec.order_statuses.append((str(status), Decimal(filled) > 0))
        r = models.ReconciliationLog.__table__
        rows = conn.execute(sa.select(r.c.hold_reason).where(r.c.outcome == "hold").order_by(r.c.id))
        rec.hold_reasons.extend(h or "unspecified" for (h,) in rows)
        e = models.Epoch.__table__
        rec.epoch_kinds.extend(str(k) for (k,) in conn.execute(sa.select(e.c.kind).order_by(e.c.id)))
    return rec


# ------------------------------------------------------------------ exports


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


TABLE_EXPORTS = (
    ("orders.csv", models.OrderRecord),
    ("fills.csv", models.FillRecord),
    ("cycles.csv", models.ReconciliationCycle),
    ("epochs.csv", models.Epoch),
)
# Random fencing tokens of the lock manager: not part of what happened, and they would break determinism.
EXCLUDED_COLUMNS = frozenset({"lock_token"})


def export_tables(db_url: str, out: Path) -> None:
    import pandas as pd

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            for name, model in TABLE_EXPORTS:
                table: sa.Table = model.__table__  # type: ignore[assignment]
                pk = list(table.primary_key.columns)
                cols = [c for c in table.columns if c.name not in EXCLUDED_COLUMNS]
                rows = conn.execute(sa.select(*cols).order_by(*pk)).all()
                _write_csv(out / name, [c.name for c in cols], [[_cell(v) for v in r] for r in rows])
            runs = models.Run.__table__
            rows = conn.execute(sa.select(runs).order_by(runs.c.id)).all()
        columns = list(runs.columns.keys())
        records = [
            {
                c: (json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v)
                for c, v in zip(columns, r, strict=True)
            }
            for r in rows
        ]
        pd.DataFrame.from_records(records, columns=columns).to_parquet(out / "runs.parquet", index=False)
    finally:
        engine.dispose()


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "–"
    return str(value)


REPORT_ROWS = (
    "start_equity",
    "end_equity",
    "total_return",
    "cagr",
    "max_drawdown",
    "max_drawdown_duration_s",
    "sharpe",
    "sortino",
    "fees_usd",
    "funding_usd",
    "turnover",
    "annual_turnover",
    "trades",
    "orders",
    "orders_rejected",
    "orders_unfilled",
    "exposure_mean",
    "holds",
    "epochs",
)


def render_report(summary: dict[str, Any]) -> str:
    metrics: dict[str, dict[str, Any]] = summary["metrics"]
    names = list(metrics)
    inputs = summary["inputs"]
    lines = [
        "# Backtest report",
        "",
        f"Period {inputs['period']['start']} → {inputs['period']['end']}, symbols "
        f"{', '.join(inputs['symbols'])}, seed {inputs['seed']}, config {inputs['config_sha256'][:12]}.",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key in REPORT_ROWS:
        lines.append(f"| {key} | " + " | ".join(_fmt(metrics[n].get(key)) for n in names) + " |")
    lines += [
        "",
        "## Assumptions",
        "",
        "* Replay of 1m bars with the deterministic intra-bar path O→L→H→C (C ≥ O) or O→H→L→C (§6.4);"
        f" ticks every {inputs['tick_s']} s; paper fees, spread and slippage from the configuration.",
        f"* Equity sampled every {inputs['equity_step_s']} s of simulated time; Sharpe and Sortino use whole"
        " UTC days only (null below two daily returns); CAGR is null below one day.",
        "* buy_and_hold: E₀ split equally, bought once as taker at the first price, no lot rounding, no"
        " funding. random_vote: the same pipeline with each cycle's Σdir sign drawn from"
        " SHA-256(`<seed>:<cycle_id>:<symbol>`).",
        "* Fees, trades and turnover count every paper fill (liquidations included); fills.csv exports the"
        " fills table of our orders.",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ the command


def _default_out() -> Path:
    return Path("backtests") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_backtest(req: BacktestRequest) -> BacktestResult:
    wall_start = time.time()
    mono_start = time.monotonic()
    _check_request(req)
    out = (req.out or _default_out()).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError([f"--out {out}: exists and is not a directory"])
    for stale in (STRATEGY_DB, RANDOM_VOTE_DB, "summary.json"):
        if (out / stale).exists():
            raise ConfigError([f"--out {out}: already holds {stale}; a backtest needs a fresh directory"])
    settings, seed = load_backtest_settings(req, out / STRATEGY_DB)
    cfg = settings.config
    baselines = list(req.baselines if req.baselines is not None else cfg.backtest.baselines)
    symbols = list(cfg.universe.symbols)
    files = input_files(req.data, symbols)
    out.mkdir(parents=True, exist_ok=True)

    equity_rows: list[list[str]] = []
    strategy = simulate(settings, equity_rows=equity_rows)
    _write_csv(
        out / "equity.csv",
        ["ts", "account_value", "cash", "gross_exposure_usd", "net_exposure_usd"],
        equity_rows,
    )
    export_tables(settings.database_url(), out)

    metrics: dict[str, dict[str, Any]] = {"strategy": strategy.metrics()}
    paper = cfg.exchange.paper
    for name in baselines:
        if name == "buy_and_hold":
            first = next((i for i, p in enumerate(strategy.prices) if len(p) == len(symbols)), None)
            if first is None:
                metrics[name] = {"error": "no sample with a price for every symbol"}
                continue
            samples = strategy.samples[first:]
            bh = buy_and_hold(
                [s.ts for s in samples],
                strategy.prices[first:],
                samples[0].account_value,
                taker_fee=float(paper.taker_fee),
                half_spread_bps=float(paper.half_spread_bps),
                slippage_bps=float(paper.slippage_bps),
            )
            metrics[name] = trading_metrics(bh.samples, bh.fills, funding_usd=0.0)
        elif name == "random_vote":
            rv_settings, _ = load_backtest_settings(
                BacktestRequest(**{**asdict(req), "seed": seed}), out / RANDOM_VOTE_DB
            )
            metrics[name] = simulate(rv_settings, direction_vote=RandomVote(seed)).metrics()

    first_ts, last_ts = strategy.samples[0].ts, strategy.samples[-1].ts
    summary = {
        "inputs": {
            "data": str(req.data),
            "files": files,
            "symbols": symbols,
            "config_sha256": config_sha256(settings),
            "seed": seed,
            "period": {"start": _iso(first_ts), "end": _iso(last_ts)},
            "tick_s": float(cfg.market_data.replay.tick_s),
            "equity_step_s": int(cfg.backtest.equity_step_s),
            "warmup_bars_1m": int(cfg.market_data.backfill_bars.get("1m", 1440)),
            "baselines": baselines,
            "version": __version__,
        },
        "metrics": metrics,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False, allow_nan=False) + "\n")
    (out / "report.md").write_text(render_report(summary), encoding="utf-8")
    run_info = {
        "started_at": _iso(wall_start),
        "duration_s": round(time.monotonic() - mono_start, 3),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "out": str(out),
        "database": str(out / STRATEGY_DB),
    }
    (out / "run_info.json").write_text(json.dumps(run_info, indent=2) + "\n")
    return BacktestResult(out, summary, run_info)
