"""Benchmark: vectorised `Population.step` against a loop of `reference.step` (providence.md §16–§17).

Prints run-ticks per second at several population sizes on one core, the speed-up over the scalar engine,
and the engine's resident bytes per run at steady state (full windows), by part: per-run arrays, APR rings,
the fill log (13 B per fill: run seq, price, side; sizes are recomputed) and the shared history. Not a test:
no assertions.

    .venv/bin/python bench/providence.py                      # N = 1k, 10k, 100k, 1M; 720 ticks
    .venv/bin/python bench/providence.py --sizes 1000,10000 --ticks 200 --ref-ticks 50
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from real_path import Bars, load_bars
from ttt.providence import reference as ref
from ttt.providence.population import Population

SYMBOL = "BTC/USDC:USDC"
TICK_S = 5.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tick_inputs(ticks: int, seed: int) -> list[tuple[float, float, float, float]]:
    """(now, price, volatility, weight) every 5 s: real BTC 1m bars when present, else a seeded GBM."""
    bars = load_bars(SYMBOL)
    if bars is not None:
        first = 1500
        source = f"real bars {bars.name}"
    else:
        bars = gbm_bars(1440 + ticks // 12 + 2, seed)
        first = 1440
        source = "seeded GBM"
    print(f"price path: {source}")
    t0 = float(bars.t_open[first])
    out = []
    for k in range(1, ticks + 1):
        now = t0 + TICK_S * k
        out.append((now, *bars.tick_inputs(now)))
    return out


def gbm_bars(n: int, seed: int) -> Bars:
    rng = np.random.default_rng(seed)
    closes = 100_000.0 * np.exp(np.cumsum(rng.normal(0, 0.0007, n)))
    opens = np.concatenate(([closes[0]], closes[:-1]))
    return Bars(
        name="seeded GBM",
        t_open=1_700_000_000.0 + 60.0 * np.arange(n),
        open=opens,
        high=np.maximum(opens, closes) * (1 + np.abs(rng.normal(0, 0.0003, n))),
        low=np.minimum(opens, closes) * (1 - np.abs(rng.normal(0, 0.0003, n))),
        close=closes,
    )


def make_states(n: int, first_id: int, start: float, rng: np.random.Generator) -> dict[int, dict[str, Any]]:
    seeds = rng.integers(0, 2**63, size=n)
    return {
        first_id + i: ref.new_state(ref.sample_params(int(seeds[i]), SYMBOL, 40.0), start, 7000)
        for i in range(n)
    }


def build_population(n: int, start: float, seed: int) -> tuple[Population, float]:
    rng = np.random.default_rng(seed)
    pop = Population(SYMBOL, {})
    t = time.perf_counter()
    chunk = 50_000
    for lo in range(0, n, chunk):
        pop.add_runs(make_states(min(chunk, n - lo), lo, start, rng))
    return pop, time.perf_counter() - t


def bench_population(n: int, inputs: list[tuple[float, float, float, float]], seed: int) -> dict[str, float]:
    pop, setup_s = build_population(n, inputs[0][0] - 1.0, seed)
    warm = min(20, len(inputs) // 4)
    for now, price, vol, w in inputs[:warm]:
        pop.step(now, price, vol, w)
    t = time.perf_counter()
    stepped = 0
    for now, price, vol, w in inputs[warm:]:
        stepped += len(pop)
        pop.step(now, price, vol, w)
    elapsed = time.perf_counter() - t
    parts = pop.nbytes()
    total = sum(parts.values())
    live = len(pop)
    return {
        "n": n,
        "setup_s": setup_s,
        "ticks": len(inputs) - warm,
        "run_ticks_per_s": stepped / elapsed,
        "ms_per_step": 1000 * elapsed / (len(inputs) - warm),
        "bytes_per_run": total / max(live, 1),
        **{f"bytes_{k}": v / max(live, 1) for k, v in parts.items()},
        "log_fills_per_run": pop.trade_log_fills() / max(live, 1),
        "active_end": live,
        "completed": len(pop.completed_run_ids),
    }


def bench_reference(
    n: int, inputs: list[tuple[float, float, float, float]], ref_ticks: int, seed: int
) -> float:
    """Scalar loop at steady state, timed over the last `ref_ticks` ticks.

    Its states come from a Population warmed on the earlier ticks: they are what reference.step would have
    produced (§17.2), without paying for the scalar warm-up.
    """
    warm, timed = inputs[: len(inputs) - ref_ticks], inputs[len(inputs) - ref_ticks :]
    pop, _ = build_population(n, inputs[0][0] - 1.0, seed)
    for now, price, vol, w in warm:
        pop.step(now, price, vol, w)
    live = pop.to_states()
    t = time.perf_counter()
    stepped = 0
    for now, price, vol, w in timed:
        for rid in list(live):
            st, r = ref.step(live[rid], now, price, vol, w)
            stepped += 1
            if r.status == "completed":
                del live[rid]
            else:
                live[rid] = st
    return stepped / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000", help="comma-separated population sizes")
    ap.add_argument("--ticks", type=int, default=720, help="ticks per population run (5 s apart)")
    ap.add_argument("--ref-runs", type=int, default=1000, help="runs in the scalar reference loop")
    ap.add_argument(
        "--ref-ticks", type=int, default=100, help="timed ticks of the scalar loop (the last ones)"
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs; "
        f"python {platform.python_version()}, numpy {np.__version__}"
    )
    inputs = tick_inputs(args.ticks, args.seed)
    results = []
    for n in sizes:
        r = bench_population(n, inputs[: args.ticks], args.seed)
        results.append(r)
        print(
            f"population N={n:>9,}: {r['run_ticks_per_s']:>14,.0f} run-ticks/s  "
            f"({r['ms_per_step']:.2f} ms/step, "
            f"{r['ticks']} ticks, setup {r['setup_s']:.1f} s); {r['bytes_per_run']:.0f} B/run "
            f"[arrays {r['bytes_per_run_arrays']:.0f}, APR rings {r['bytes_apr_rings']:.0f}, "
            f"trade log {r['bytes_trade_log']:.0f} ({r['log_fills_per_run']:.2f} fills/run held, 13 B each "
            f"+ spare capacity), history {r['bytes_history']:.1f}]"
        )
        sys.stdout.flush()
    ref_ticks = min(args.ref_ticks, args.ticks // 2)
    ref_rate = bench_reference(args.ref_runs, inputs, ref_ticks, args.seed)
    print(
        f"reference loop N={args.ref_runs:,}: {ref_rate:,.0f} run-ticks/s "
        f"(last {ref_ticks} of {args.ticks} ticks, windows full)"
    )
    for r in results:
        print(f"speed-up at N={int(r['n']):,}: {r['run_ticks_per_s'] / ref_rate:,.0f}x")
    if not math.isfinite(ref_rate):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
