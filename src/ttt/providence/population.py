"""The vectorised run engine: every run of one shard stepped at once (providence.md §16, §17, §19.3).

Why it is built this way:

* **Struct of arrays.** Per-run scalars live in NumPy arrays; runs are ordered by R
  (`rolling_apr_minutes`) so each R group is one contiguous slice with its own ring buffer of APR values,
  the only per-run history a state needs (weights and timestamps are shared, §16).
* **O(1) entropy.** One shared weight history with prefix motif counts: a run's H is two count look-ups
  and a memoised `pe_from_counts`, bit-identical to §14.1.
* **Rolling APR.** §1.3 demands a sequential sum. A sliding sum is O(1) but not bit-exact, so it carries a
  rigorous error bound; a decision that could flip inside the bound (`apr_change` sign, `apr_last == 0`)
  is re-decided from the exact sequential sum over the ring, and every float handed out by `to_states` is
  recomputed exactly. Decisions are therefore identical to `reference.step`, and states are bit-equal.
* **Goal.** `numpy.exp` may differ from `math.exp` by an ulp; runs whose APR is within 1e-12 relative of
  the exit threshold are re-evaluated with `math.exp` (§17.3).
* **Fill log.** Fills are only needed to serialise a book, and an engine fill's size is a pure function of
  the run's parameters, the price and the side (§5 S14.7). So the log holds (run seq, price, side), 13 B a
  fill, and `to_states` recomputes sizes with the engine's own expression, bit for bit. Imported sizes that
  the formula does not reproduce keep their exact value in a side table.
* **Non-conforming runs** (states whose lists are not a suffix of the shared history, e.g. cold loads from
  an older database copy, §16.6) are stepped by `reference.step` until their own entries have been pruned
  away, then moved into the arrays.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ttt.domain.params import DEFAULT_MAX_POSITION_DIRECTION
from ttt.domain.voms import FEE_RATE
from ttt.providence import reference as ref
from ttt.providence._history import History

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

__all__ = ["Population", "StepBatch"]

_U = 2.0**-53
_TINY = 1e-300
_MAX_WINDOW_MINUTES = 1_000_000
_INT_EXACT = 2**53
_HISTORY_KEEP_S = 2400.0
# Run sequence numbers key the trade log as int32; past this they are renumbered (order kept).
_SEQ_LIMIT = 2**31 - 1
_LOG_GROWTH = 1.5

STATUS_NAMES = np.array(["continue", "completed", "skipped"], dtype=object)
REASON_NAMES = np.array(
    [
        None,
        "max_duration",
        "apr_target",
        "reversal",
        "margin_limit",
        "price_unavailable",
        "volatility_unavailable",
    ],
    dtype=object,
)
_ST_CONTINUE, _ST_COMPLETED, _ST_SKIPPED = 0, 1, 2
_R_NONE, _R_MAXDUR, _R_TARGET, _R_REVERSAL, _R_MARGIN, _R_PRICE, _R_VOL = range(7)

# ann_params keys whose values live in per-run arrays (value kind recorded in the run's template).
_ANN_ARRAYS: dict[str, str] = {
    "max_duration": "md",
    "max_direction_reversal": "mdr",
    "balance_divisor": "bdiv",
    "pos_scaler": "psc",
    "max_cross_margin_ratio": "mcmr",
    "apr_target": "aprt",
    "pos_weight": "pw",
    "min_goal": "mg",
    "max_goal": "xg",
    "min_goal_weight": "mgw",
    "max_goal_weight": "xgw",
    "volatility_entropy_window_minutes": "W",
    "volatility_entropy_window_samples": "S",
    "machine_vision_entropy_max": "hmax",
    "rolling_apr_minutes": "R",
}
_REQUIRED_ANN = (*_ANN_ARRAYS, "leverage", "system_swing")
_FLOAT_FIELDS = (
    "st", "b0", "md", "mdr", "psc", "mcmr", "aprt", "pw", "mg", "xg", "mgw", "xgw", "hmax", "bdiv", "lng",
    "vs0", "vlev", "vfee", "vp", "q", "e", "f", "ssum", "asum", "serr", "am", "ae", "apu",
)  # fmt: skip
_INT_FIELDS = ("rid", "seq", "pos", "it", "fw", "fa")
_I32_FIELDS = ("W", "S", "R", "tmpl", "ntr", "nz")
_BOOL_FIELDS = ("swing", "vw", "dead", "pend")


def _number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _kind(value: object) -> str:
    return "i" if isinstance(value, numbers.Integral) else "f"


def _restore(kind: str, value: Any) -> Any:
    return int(value) if kind == "i" else float(value)


@dataclass(frozen=True)
class StepBatch:
    """Results of one `Population.step` for the runs active at its start (§19.3); order is internal.

    `status` and `reason` are the §19.3 object arrays of str / None. They are built on first access from
    the int8 `status_code` / `reason_code` (indices into `STATUS_NAMES` / `REASON_NAMES`), which callers
    that filter large batches should prefer.
    """

    run_ids: I64
    status_code: npt.NDArray[np.int8]
    reason_code: npt.NDArray[np.int8]
    trade: F64
    position_direction: I64
    balance: F64
    apr: F64
    entropy: F64
    iteration_count: I64

    @functools.cached_property
    def status(self) -> npt.NDArray[np.object_]:
        out: npt.NDArray[np.object_] = STATUS_NAMES[self.status_code]
        return out

    @functools.cached_property
    def reason(self) -> npt.NDArray[np.object_]:
        out: npt.NDArray[np.object_] = REASON_NAMES[self.reason_code]
        return out

    def __len__(self) -> int:
        return int(self.run_ids.shape[0])

    def as_step_results(self) -> dict[int, ref.StepResult]:
        out: dict[int, ref.StepResult] = {}
        statuses = STATUS_NAMES.tolist()
        reasons = REASON_NAMES.tolist()
        for rid, sc, rc, trade, pos, bal, apr, h in zip(
            self.run_ids.tolist(),
            self.status_code.tolist(),
            self.reason_code.tolist(),
            self.trade.tolist(),
            self.position_direction.tolist(),
            self.balance.tolist(),
            self.apr.tolist(),
            self.entropy.tolist(),
            strict=True,
        ):
            out[rid] = ref.StepResult(
                status=statuses[sc],
                reason=reasons[rc],
                trade=trade,
                position_direction=pos,
                balance=bal,
                apr=None if math.isnan(apr) else apr,
                entropy=None if math.isnan(h) else h,
            )
        return out


def _empty_batch() -> StepBatch:
    return StepBatch(
        run_ids=np.zeros(0, dtype=np.int64),
        status_code=np.zeros(0, dtype=np.int8),
        reason_code=np.zeros(0, dtype=np.int8),
        trade=np.zeros(0),
        position_direction=np.zeros(0, dtype=np.int64),
        balance=np.zeros(0),
        apr=np.zeros(0),
        entropy=np.zeros(0),
        iteration_count=np.zeros(0, dtype=np.int64),
    )


class _Group:
    """Runs sharing one R: slots lo … hi-1 and a ring of APR values, row g % cap holds entry g."""

    __slots__ = ("alpha_cur", "alpha_prev", "hi", "lo", "r", "ring")

    def __init__(self, r: int, lo: int, hi: int, ring: F64, alpha_cur: int, alpha_prev: int) -> None:
        self.r = r
        self.lo = lo
        self.hi = hi
        self.ring = ring
        self.alpha_cur = alpha_cur  # α(R) at the newest history entry
        self.alpha_prev = alpha_prev  # α(R) at the entry before it


@dataclass
class _Parsed:
    """A validated state, split into what the arrays need."""

    rid: int
    state: Mapping[str, Any]
    vals: dict[str, Any]
    template: tuple[Any, ...]
    trades: list[tuple[float, float]]
    voms_raw: Any
    pend_ac: tuple[Any, Any] | None


def _bad(rid: int, what: str) -> ValueError:
    return ValueError(f"run {rid}: {what}")


def _finite_number(rid: int, key: str, value: object) -> float:
    if not _number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _bad(rid, f"{key} must be a finite number, got {value!r}")
    if isinstance(value, numbers.Integral) and abs(int(value)) > _INT_EXACT:
        raise _bad(rid, f"{key} = {value!r} is too large to be held exactly")
    return float(value)  # type: ignore[arg-type]


def _window_int(rid: int, key: str, value: object, minimum: int) -> int:
    x = _finite_number(rid, f"ann_params.{key}", value)
    if not x.is_integer() or x < minimum or x > _MAX_WINDOW_MINUTES:
        raise _bad(rid, f"ann_params.{key} must be a whole number in [{minimum}, {_MAX_WINDOW_MINUTES}]")
    return int(x)


def _number_list(rid: int, key: str, value: object) -> list[float]:
    if not isinstance(value, list):
        raise _bad(rid, f"{key} must be a list, got {type(value).__name__}")
    out = []
    for i, x in enumerate(value):
        if not _number(x) or not math.isfinite(x):
            raise _bad(rid, f"{key}[{i}] must be a finite number, got {x!r}")
        out.append(float(x))
    return out


def _parse_state(rid: object, state: object, symbol: str) -> _Parsed:
    """Validate one reference state; every problem names the run and the key."""
    if not isinstance(rid, numbers.Integral) or isinstance(rid, bool):
        raise ValueError(f"run id must be an int, got {rid!r}")
    rid = int(rid)
    if not isinstance(state, Mapping):
        raise _bad(rid, f"state must be a dict, got {type(state).__name__}")
    missing = [k for k in ref.STATE_KEYS if k not in state]
    if missing:
        raise _bad(rid, f"state lacks {', '.join(missing)}")
    extra = [k for k in state if k not in ref.STATE_KEYS]
    if extra:
        raise _bad(rid, f"state has unknown keys {', '.join(map(str, extra))}")
    if state["symbol"] != symbol:
        raise _bad(rid, f"state symbol {state['symbol']!r} is not the population's {symbol!r}")
    st = _finite_number(rid, "start_time", state["start_time"])
    b0 = _finite_number(rid, "start_balance", state["start_balance"])
    if b0 <= 0:
        raise _bad(rid, f"start_balance must be > 0, got {state['start_balance']!r}")
    a = state["ann_params"]
    if not isinstance(a, Mapping):
        raise _bad(rid, "ann_params must be a dict")
    for key in _REQUIRED_ANN:
        if key not in a:
            raise _bad(rid, f"ann_params lacks {key}")
    vals: dict[str, Any] = {"rid": rid, "st": st, "b0": b0}
    spec: list[tuple[str, str, Any]] = []
    for key, value in a.items():
        name = _ANN_ARRAYS.get(key)
        if name is None:
            spec.append((key, "c", value))
            continue
        if name in ("W", "R"):
            vals[name] = _window_int(rid, key, value, 1)
        elif name == "S":
            vals[name] = _window_int(rid, key, value, 2)
        else:
            vals[name] = _finite_number(rid, f"ann_params.{key}", value)
        spec.append((key, _kind(value), None))
    lev = _finite_number(rid, "ann_params.leverage", a["leverage"])
    if lev <= 0:
        raise _bad(rid, f"ann_params.leverage must be > 0, got {a['leverage']!r}")
    swing = a["system_swing"]
    if not (isinstance(swing, bool) or (isinstance(swing, int) and swing in (0, 1))):
        raise _bad(rid, f"ann_params.system_swing must be a bool, got {swing!r}")
    vals["swing"] = bool(swing)
    mg, xg = vals["mg"], vals["xg"]
    if mg <= 0 or xg / mg <= 0:
        raise _bad(rid, "ann_params.min_goal must be > 0 and max_goal/min_goal > 0")
    vals["lng"] = math.log(a["max_goal"] / a["min_goal"])

    wv = _number_list(rid, "weights", state["weights"])
    wts = _number_list(rid, "weights_timestamp", state["weights_timestamp"])
    av = _number_list(rid, "aprs", state["aprs"])
    ats = _number_list(rid, "aprs_timestamp", state["aprs_timestamp"])
    if len(wv) != len(wts):
        raise _bad(rid, "weights and weights_timestamp differ in length")
    if len(av) != len(ats):
        raise _bad(rid, "aprs and aprs_timestamp differ in length")
    for key in ("position_direction", "iteration_count"):
        v = state[key]
        if not isinstance(v, int) or isinstance(v, bool) or abs(v) > _INT_EXACT:
            raise _bad(rid, f"{key} must be an int, got {v!r}")
    ac, al = state["apr_change"], state["apr_last"]
    _finite_number(rid, "apr_change", ac)
    vals["am"] = _finite_number(rid, "apr_last", al)
    vals["pos"] = state["position_direction"]
    vals["it"] = state["iteration_count"]

    vs = state["voms_state"]
    trades: list[tuple[float, float]] = []
    voms_raw: Any = None
    if vs:
        if not isinstance(vs, Mapping):
            raise _bad(rid, "voms_state must be a dict or null")
        for key in ("starting_balance", "leverage", "fee_rate", "current_price", "trades"):
            if key not in vs:
                raise _bad(rid, f"voms_state lacks {key}")
        vs0 = _finite_number(rid, "voms_state.starting_balance", vs["starting_balance"])
        vlev = _finite_number(rid, "voms_state.leverage", vs["leverage"])
        if vs0 <= 0 or vlev <= 0:
            raise _bad(rid, "voms_state starting_balance and leverage must be > 0")
        vals["vfee"] = _finite_number(rid, "voms_state.fee_rate", vs["fee_rate"])
        vals["vp"] = _finite_number(rid, "voms_state.current_price", vs["current_price"])
        if vals["vp"] < 0:
            raise _bad(rid, "voms_state.current_price must not be negative")
        if not isinstance(vs["trades"], list):
            raise _bad(rid, "voms_state.trades must be a list")
        for i, fill in enumerate(vs["trades"]):
            if not isinstance(fill, list | tuple) or len(fill) != 2:
                raise _bad(rid, f"voms_state.trades[{i}] is not a [price, size] pair")
            p = _finite_number(rid, f"voms_state.trades[{i}][0]", fill[0])
            q = _finite_number(rid, f"voms_state.trades[{i}][1]", fill[1])
            trades.append((p, q))
        vals["vs0"], vals["vlev"], vals["vw"] = vs0, vlev, True
        vkinds = (_kind(vs["starting_balance"]), _kind(vs["leverage"]), _kind(vs["fee_rate"]))
    else:
        voms_raw = vs
        vals["vs0"], vals["vlev"], vals["vfee"], vals["vp"], vals["vw"] = b0, lev, FEE_RATE, 0.0, False
        vkinds = (_kind(state["start_balance"]), _kind(a["leverage"]), "f")
    qs = es = fs = 0.0
    fee = vals["vfee"]
    for p, q in trades:
        value = p * q
        qs = qs + q
        es = es + value
        fs = fs + (abs(value) * fee) * 2
    vals["q"], vals["e"], vals["f"], vals["ntr"] = qs, es, fs, len(trades)
    template = (
        tuple(spec),
        _kind(state["start_time"]),
        _kind(state["start_balance"]),
        vkinds,
    )
    pend_ac = None
    if not (type(ac) is int and ac == 0 and type(al) is int and al == 0):
        pend_ac = (ac, al)
    vals["_lists"] = (wv, wts, av, ats)
    return _Parsed(rid, state, vals, template, trades, voms_raw, pend_ac)


def _seq_sum_columns(block: F64) -> F64:
    """Sequential (left-to-right from 0.0) sums down each column, as §1.3 requires."""
    padded = np.zeros((block.shape[0] + 1, block.shape[1]))
    padded[1:] = block
    out: F64 = np.add.accumulate(padded, axis=0)[-1]
    return out


class Population:
    """All runs of one shard as arrays; `step` advances every active run by one tick (§19.3)."""

    def __init__(self, symbol: str, config: Mapping[str, Any] | None = None) -> None:
        self.symbol = symbol
        self.config: Mapping[str, Any] = config if config is not None else {}
        self._hist = History()
        self._v: dict[str, npt.NDArray[Any]] = {}
        for name in _FLOAT_FIELDS:
            self._v[name] = np.zeros(0, dtype=np.float64)
        for name in _INT_FIELDS:
            self._v[name] = np.zeros(0, dtype=np.int64)
        for name in _I32_FIELDS:
            self._v[name] = np.zeros(0, dtype=np.int32)
        for name in _BOOL_FIELDS:
            self._v[name] = np.zeros(0, dtype=bool)
        self._n = 0
        self._ndead = 0
        self._groups: list[_Group] = []
        self._wvals = np.zeros(0, dtype=np.int64)
        self._templates: list[tuple[Any, ...]] = []
        self._template_ids: dict[tuple[Any, ...], int] = {}
        self._pend_ac: dict[int, tuple[Any, Any]] = {}
        self._voms_raw: dict[int, Any] = {}
        self._fallback: dict[int, dict[str, Any]] = {}
        self._seq_of_fallback: dict[int, int] = {}
        self._completed: dict[int, dict[str, Any]] = {}
        self._next_seq = 0
        # Fill log, 13 B per fill: run seq, price, side (+1 / -1: size is the §5 S14.7 formula of the run's
        # parameters and the price; 0: an imported size that is not, kept exactly in `_fq`, in log order).
        self._log_key = np.zeros(1024, dtype=np.int32)
        self._log_p = np.zeros(1024)
        self._log_s = np.zeros(1024, dtype=np.int8)
        self._log_n = 0
        self._log_live = 0
        self._fq = np.zeros(0)
        self._fq_n = 0
        self._lookup: tuple[I64, I64] | None = None
        self._batch = _empty_batch()

    # ------------------------------------------------------------------ public API

    @classmethod
    def from_states(
        cls, symbol: str, states: Mapping[int, Mapping[str, Any]], config: Mapping[str, Any] | None = None
    ) -> Population:
        pop = cls(symbol, config)
        pop.add_runs(states)
        return pop

    @property
    def run_ids(self) -> tuple[int, ...]:
        """Active runs in insertion order."""
        v = self._v
        alive = ~v["dead"]
        seqs = [(int(s), int(r)) for s, r in zip(v["seq"][alive], v["rid"][alive], strict=True)]
        seqs += [(self._seq_of_fallback[r], r) for r in self._fallback]
        seqs.sort()
        return tuple(r for _, r in seqs)

    def id_set(self) -> set[int]:
        """Active runs, unordered: the shard step's membership checks need no insertion order."""
        v = self._v
        out = set(v["rid"][~v["dead"]].tolist())
        out.update(self._fallback)
        return out

    @property
    def completed_run_ids(self) -> tuple[int, ...]:
        return tuple(self._completed)

    def __len__(self) -> int:
        return self._n - self._ndead + len(self._fallback)

    def results(self) -> StepBatch:
        return self._batch

    def add_runs(self, states: Mapping[int, Mapping[str, Any]]) -> None:
        """Add reference states; ValueError (nothing added) on a duplicate id, wrong symbol or bad state."""
        known = self._all_ids()
        parsed: list[_Parsed] = []
        for rid, state in states.items():
            p = _parse_state(rid, state, self.symbol)
            if p.rid in known:
                raise ValueError(f"run {p.rid}: duplicate run id")
            known.add(p.rid)
            parsed.append(p)
        if not parsed:
            return
        if self._next_seq + len(parsed) > _SEQ_LIMIT:
            self._renumber_seqs()
            if self._next_seq + len(parsed) > _SEQ_LIMIT:
                raise ValueError(f"a population holds at most {_SEQ_LIMIT} runs")
        if self._no_history_users() and any(p.vals["_lists"][1] or p.vals["_lists"][3] for p in parsed):
            # Nobody uses the shared history: rebuild it from the incoming states' own lists.
            if self._n:
                self._relayout([])
            self._hist.reset()
            self._seed_history(parsed)
        admit: list[_Parsed] = []
        for p in parsed:
            seq = self._next_seq
            self._next_seq += 1
            p.vals["seq"] = seq
            if self._conforms(p):
                admit.append(p)
            else:
                self._fallback[p.rid] = _copy_state(p.state)
                self._seq_of_fallback[p.rid] = seq
        if admit:
            self._admit(admit)

    def to_states(self, run_ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
        """Deep, JSON-compatible copies; all active runs by default, or the given active/completed ids."""
        ids = list(self.run_ids) if run_ids is None else [int(r) for r in run_ids]
        out: dict[int, dict[str, Any]] = {}
        slots: list[int] = []
        slot_ids: list[int] = []
        for rid in ids:
            if rid in self._fallback:
                out[rid] = _copy_state(self._fallback[rid])
            elif rid in self._completed:
                out[rid] = _copy_state(self._completed[rid])
            else:
                slot = self._slot_of(rid)
                if slot < 0:
                    raise KeyError(f"run {rid} is not in this population")
                slots.append(slot)
                slot_ids.append(rid)
        if slots:
            made = self._materialize(np.asarray(slots, dtype=np.int64), self._hist.last)
            for rid, st in zip(slot_ids, made, strict=True):
                out[rid] = st
        return {rid: out[rid] for rid in ids}

    def iteration_counts(self, run_ids: Iterable[int]) -> dict[int, int]:
        """Iteration counts of active or completed runs without materialising their states: the shard step
        decides its periodic database writes from them (§9.2) and serialises only the runs it writes."""
        ids = [int(r) for r in run_ids]
        out: dict[int, int] = {}
        array_ids: list[int] = []
        for rid in ids:
            if rid in self._fallback:
                out[rid] = int(self._fallback[rid]["iteration_count"])
            elif rid in self._completed:
                out[rid] = int(self._completed[rid]["iteration_count"])
            else:
                array_ids.append(rid)
        if array_ids:
            v = self._v
            live = np.flatnonzero(~v["dead"][: self._n])
            live_rids = v["rid"][live]
            order = np.argsort(live_rids, kind="stable")
            keys = live_rids[order]
            wanted = np.asarray(array_ids, dtype=np.int64)
            pos = np.minimum(np.searchsorted(keys, wanted), max(keys.shape[0] - 1, 0))
            if keys.shape[0] == 0 or not np.array_equal(keys[pos], wanted):
                missing = sorted(set(array_ids) - set(keys.tolist()))
                raise KeyError(f"runs {missing[:5]} are not in this population")
            counts = v["it"][live[order[pos]]]
            out.update(zip(array_ids, (int(c) for c in counts.tolist()), strict=True))
        return {rid: out[rid] for rid in ids}

    def remove_runs(self, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Drop runs (active or completed) and return their final states."""
        ids = [int(r) for r in run_ids]
        out = self.to_states(ids)
        dead_slots = []
        for rid in ids:
            if rid in self._fallback:
                del self._fallback[rid]
                del self._seq_of_fallback[rid]
            elif rid in self._completed:
                del self._completed[rid]
            else:
                dead_slots.append(self._slot_of(rid))
        if dead_slots:
            self._kill(np.asarray(dead_slots, dtype=np.int64))
            self._maybe_compact()
        return out

    def step(self, now: float, price: float | None, volatility: float | None, weight: float) -> StepBatch:
        """Step every active run with the same inputs (§5, under the §17.2 contract)."""
        if not (_number(weight) and math.isfinite(weight) and -1.0 <= weight <= 1.0):
            raise ValueError(f"weight must be a finite number in [-1, 1], got {weight!r}")
        if not (_number(now) and math.isfinite(now)):
            raise ValueError(f"now must be a finite number, got {now!r}")
        cap = self.config.get("max_position_direction", DEFAULT_MAX_POSITION_DIRECTION)
        if not (isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1):
            raise ValueError(f"providence.max_position_direction must be an integer >= 1, got {cap!r}")
        for name, x in (("price", price), ("volatility", volatility)):
            if x is not None and not _number(x):
                raise ValueError(f"{name} must be a number or None, got {x!r}")
        now = float(now)
        w = float(weight)
        hist = self._hist
        if hist.n and now < float(hist.tau[hist.n - 1]):
            if self._history_in_use():
                raise ValueError(
                    f"now {now!r} is earlier than the stored timestamps {hist.tau[hist.n - 1]!r}"
                )
            hist.reset()
        for rid, st in self._fallback.items():
            for key in ("weights_timestamp", "aprs_timestamp"):
                if st[key] and now < st[key][-1]:
                    raise ValueError(f"run {rid}: now {now!r} is earlier than the stored {key}")
        p = None if price is None else float(price)
        sig = None if volatility is None else float(volatility)
        if p is None or not math.isfinite(p) or p <= 0:
            skip = _R_PRICE
        elif sig is None or not math.isfinite(sig) or sig < 0:
            skip = _R_VOL
        else:
            skip = _R_NONE

        parts = [self._step_vector(now, p, sig, w, cap, skip)]
        if self._fallback:
            parts.append(self._step_fallback(now, price, volatility, weight))
        batch = parts[0] if len(parts) == 1 else _concat_batches(parts)
        self._batch = batch
        self._maybe_compact()
        return batch

    # ------------------------------------------------------------------ memory report

    def nbytes(self) -> dict[str, int]:
        """Bytes held by the engine's arrays, by part (benchmarks report what dominates)."""
        per_run = sum(int(a.nbytes) for a in self._v.values())
        rings = sum(int(g.ring.nbytes) for g in self._groups)
        log = int(self._log_key.nbytes + self._log_p.nbytes + self._log_s.nbytes + self._fq.nbytes)
        return {
            "per_run_arrays": per_run,
            "apr_rings": rings,
            "trade_log": log,
            "history": self._hist.nbytes(),
        }

    def trade_log_fills(self) -> int:
        """Fill records the log holds (live runs' fills plus dropped runs' fills awaiting compaction)."""
        return self._log_n

    # ------------------------------------------------------------------ internals: bookkeeping

    def _all_ids(self) -> set[int]:
        v = self._v
        ids = set(v["rid"][~v["dead"]].tolist())
        ids.update(self._fallback)
        ids.update(self._completed)
        return ids

    def _slot_of(self, rid: int) -> int:
        if self._lookup is None:
            v = self._v
            order = np.argsort(v["rid"], kind="stable").astype(np.int64)
            self._lookup = (v["rid"][order], order)
        keys, order = self._lookup
        i = int(np.searchsorted(keys, rid))
        while i < keys.shape[0] and int(keys[i]) == rid:
            slot = int(order[i])
            if not self._v["dead"][slot]:
                return slot
            i += 1
        return -1

    def _history_in_use(self) -> bool:
        """Whether any array run's lists reference history entries (they then bind `now`)."""
        v = self._v
        alive = ~v["dead"]
        last = self._hist.last
        return bool(np.any(alive & ((v["fw"] <= last) | (v["fa"] <= last))))

    def _no_history_users(self) -> bool:
        return self._n - self._ndead == 0

    def _kill(self, slots: I64) -> None:
        v = self._v
        fresh = slots[~v["dead"][slots]]
        v["dead"][fresh] = True
        self._ndead += int(fresh.shape[0])
        self._log_live -= int(v["ntr"][fresh].sum())
        for rid in v["rid"][fresh].tolist():
            self._pend_ac.pop(rid, None)
            self._voms_raw.pop(rid, None)

    def _maybe_compact(self) -> None:
        if self._ndead and ((self._ndead > 64 and self._ndead * 8 > self._n) or self._ndead == self._n):
            self._relayout([])
        if self._log_n > 4096 and self._log_live * 2 < self._log_n:
            self._compact_log()

    def _compact_log(self) -> None:
        """Drop the fills of runs that left the arrays; seqs are never reused, so no fill changes owner."""
        v = self._v
        live = v["seq"][~v["dead"] & (v["ntr"] > 0)].astype(np.int32)
        n = self._log_n
        keep = np.isin(self._log_key[:n], live)
        if self._fq_n:
            fkeep = keep[self._log_s[:n] == 0]
            fm = int(fkeep.sum())
            self._fq[:fm] = self._fq[: self._fq_n][fkeep]
            self._fq_n = fm
        m = int(keep.sum())
        self._log_key[:m] = self._log_key[:n][keep]
        self._log_p[:m] = self._log_p[:n][keep]
        self._log_s[:m] = self._log_s[:n][keep]
        self._log_n = m
        self._log_live = m

    def _renumber_seqs(self) -> None:
        """Re-issue run seqs as 0 … n-1 in the same order, so they keep fitting the int32 log keys."""
        if self._ndead:
            self._relayout([])
        self._compact_log()
        v = self._v
        fb = list(self._seq_of_fallback.items())
        old = np.sort(np.concatenate([v["seq"], np.asarray([s for _, s in fb], dtype=np.int64)]))
        v["seq"] = np.searchsorted(old, v["seq"]).astype(np.int64)
        for rid, s in fb:
            self._seq_of_fallback[rid] = int(np.searchsorted(old, s))
        n = self._log_n
        self._log_key[:n] = np.searchsorted(old, self._log_key[:n].astype(np.int64))
        self._next_seq = int(old.shape[0])

    @staticmethod
    def _grown(arr: npt.NDArray[Any], used: int, need: int) -> npt.NDArray[Any]:
        if need <= arr.shape[0]:
            return arr
        new = np.zeros(max(need, int(arr.shape[0] * _LOG_GROWTH) + 16), dtype=arr.dtype)
        new[:used] = arr[:used]
        return new

    def _log_append(self, seqs: I64, prices: F64, sides: npt.NDArray[np.int8], foreign: F64 | None) -> None:
        """Append fills in fill order; `foreign` holds the exact sizes of the side-0 fills among them."""
        k = int(seqs.shape[0])
        if k == 0:
            return
        n = self._log_n
        need = n + k
        self._log_key = self._grown(self._log_key, n, need)
        self._log_p = self._grown(self._log_p, n, need)
        self._log_s = self._grown(self._log_s, n, need)
        self._log_key[n:need] = seqs
        self._log_p[n:need] = prices
        self._log_s[n:need] = sides
        self._log_n = need
        self._log_live += k
        if foreign is not None and foreign.shape[0]:
            fn = self._fq_n + int(foreign.shape[0])
            self._fq = self._grown(self._fq, self._fq_n, fn)
            self._fq[self._fq_n : fn] = foreign
            self._fq_n = fn

    def _trades_of(self, slots: I64) -> dict[int, list[list[float]]]:
        """Fills of these runs by seq, in fill order; engine sizes recomputed with the engine's expression."""
        v = self._v
        seqs = v["seq"][slots]
        out: dict[int, list[list[float]]] = {s: [] for s in seqs.tolist()}
        n = self._log_n
        if n == 0 or slots.shape[0] == 0:
            return out
        lk = self._log_key[:n]
        sel = np.flatnonzero(np.isin(lk, seqs.astype(np.int32)))
        if sel.shape[0] == 0:
            return out
        sel = sel[np.argsort(lk[sel], kind="stable")]
        keys = lk[sel].astype(np.int64)
        by_seq = np.argsort(seqs)
        src = slots[by_seq[np.searchsorted(seqs[by_seq], keys)]]
        price = self._log_p[sel]
        side = self._log_s[sel]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            qq = (((v["b0"][src] * v["pw"][src]) / price) * v["psc"][src]) / v["bdiv"][src]
        size = np.where(side > 0, qq, -qq)
        foreign = side == 0
        if foreign.any():
            rank = np.cumsum(self._log_s[:n] == 0) - 1
            size[foreign] = self._fq[rank[sel[foreign]]]
        for key, px, qx in zip(keys.tolist(), price.tolist(), size.tolist(), strict=True):
            out[key].append([px, qx])
        return out

    def _template_id(self, template: tuple[Any, ...]) -> int:
        try:
            tid = self._template_ids.get(template)
        except TypeError:  # unhashable constant (e.g. a list value): keep it as its own template
            self._templates.append(copy.deepcopy(template))
            return len(self._templates) - 1
        if tid is None:
            tid = len(self._templates)
            self._templates.append(template)
            self._template_ids[template] = tid
        return tid

    # ------------------------------------------------------------------ internals: admission

    def _seed_history(self, parsed: list[_Parsed]) -> None:
        """Build the shared history from the states' own lists (from_states of a shard's cached states).

        The tick sequence most states agree on wins (vote on the newest entries), so one foreign or stale
        state cannot push every other run onto the slow non-conforming path.
        """
        lists = [lst for p in parsed for lst in (p.vals["_lists"][1], p.vals["_lists"][3]) if lst]
        if not lists:
            return
        newest = max(lst[-1] for lst in lists)
        votes: dict[tuple[float, ...], int] = {}
        for lst in lists:
            if lst[-1] == newest:
                tail = tuple(lst[-8:])
                votes[tail] = votes.get(tail, 0) + 1
        tail = max(votes, key=lambda t: (votes[t], len(t)))
        best = max((lst for lst in lists if tuple(lst[-len(tail) :]) == tail), key=len)
        if any(y < x for x, y in itertools.pairwise(best)):
            return
        n = len(best)
        w = [0.0] * n
        known = [False] * n
        for p in sorted(parsed, key=lambda x: -len(x.vals["_lists"][1])):
            wv, wts = p.vals["_lists"][0], p.vals["_lists"][1]
            k = len(wts)
            if k == 0 or k > n or wts != best[n - k :]:
                continue
            for i in range(k):
                if not known[n - k + i]:
                    known[n - k + i] = True
                    w[n - k + i] = wv[i]
        for t, x, kn in zip(best, w, known, strict=True):
            self._hist.append(t, x, kn)

    def _conforms(self, p: _Parsed) -> bool:
        """§16.3: both lists are suffixes of the shared history ending at its newest entry (or empty)."""
        wv, wts, _, ats = p.vals["_lists"]
        h = self._hist
        end = h.end
        for ts in (wts, ats):
            k = len(ts)
            if k == 0:
                continue
            if k > h.n:
                return False
            seg = h.times(end - k, end)
            if not np.array_equal(seg, np.asarray(ts)):
                return False
        k = len(wts)
        if k:
            if not bool(h.known[h.n - k : h.n].all()):
                return False
            if not np.array_equal(h.weights(end - k, end), np.asarray(wv)):
                return False
        fw, fa = end - len(wts), end - len(ats)
        if h.n:
            # Lists must already be pruned at the newest entry (S11), as every stepped state is.
            now_b = float(h.tau[h.n - 1])
            if wts and fw < int(h.beta(now_b, np.array([p.vals["W"]]))[0]):
                return False
            if ats and fa < int(h.beta(now_b, np.array([p.vals["R"]]))[0]):
                return False
        p.vals["fw"], p.vals["fa"] = fw, fa
        return True

    def _admit(self, parsed: list[_Parsed]) -> None:
        """Add conforming runs to the arrays (one re-layout for the batch)."""
        h = self._hist
        b = h.last
        m = len(parsed)
        new: dict[str, npt.NDArray[Any]] = {}
        for name in _FLOAT_FIELDS:
            new[name] = np.zeros(m)
        for name in _INT_FIELDS:
            new[name] = np.zeros(m, dtype=np.int64)
        for name in _I32_FIELDS:
            new[name] = np.zeros(m, dtype=np.int32)
        for name in _BOOL_FIELDS:
            new[name] = np.zeros(m, dtype=bool)
        ring_data: list[tuple[int, list[float]]] = []
        log_r: list[int] = []
        log_p: list[float] = []
        log_q: list[float] = []
        log_c: list[tuple[float, float, float, float]] = []
        for j, p in enumerate(parsed):
            vals = p.vals
            for key, value in vals.items():
                if key != "_lists":
                    new[key][j] = value
            new["tmpl"][j] = self._template_id(p.template)
            new["pend"][j] = True
            new["apu"][j] = math.nan
            _, _, av, ats = vals["_lists"]
            ring_data.append((vals["fa"], av))
            # Exact window sum at the newest entry, the start point of the sliding sum.
            r = vals["R"]
            total = 0.0
            absum = 0.0
            k = 0
            nz = 0
            if ats:
                now_b = ats[-1]
                for x, t in zip(av, ats, strict=True):
                    if (now_b - t) / 60 < r:
                        total = total + x
                        absum = absum + abs(x)
                        k += 1
                        nz += x != 0.0
            new["ssum"][j] = total
            new["asum"][j] = absum
            new["serr"][j] = 2.02 * k * _U * absum
            new["nz"][j] = nz
            if p.pend_ac is not None:
                self._pend_ac[p.rid] = p.pend_ac
            if p.voms_raw is not None:
                self._voms_raw[p.rid] = p.voms_raw
            coef = (vals["b0"], vals["pw"], vals["psc"], vals["bdiv"])
            for px, qx in p.trades:
                log_r.append(vals["seq"])
                log_p.append(px)
                log_q.append(qx)
                log_c.append(coef)
        del b
        if log_r:
            price = np.asarray(log_p, dtype=np.float64)
            size = np.asarray(log_q, dtype=np.float64)
            c = np.asarray(log_c, dtype=np.float64).reshape(-1, 4)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                qq = (((c[:, 0] * c[:, 1]) / price) * c[:, 2]) / c[:, 3]
            bits = size.view(np.int64)
            side = np.zeros(size.shape[0], dtype=np.int8)
            side[qq.view(np.int64) == bits] = 1
            side[(-qq).view(np.int64) == bits] = -1
            self._log_append(np.asarray(log_r, dtype=np.int64), price, side, size[side == 0])
        self._relayout([(new, ring_data)])

    # ------------------------------------------------------------------ internals: layout

    def _ring_need_from(self, r: int, alpha_cur: int, alpha_prev: int) -> int:
        """Oldest entry an R group must keep: its pruned list, and the windows at the last two entries."""
        h = self._hist
        if h.n == 0:
            return h.end
        beta = int(h.beta(float(h.tau[h.n - 1]), np.array([r]))[0])
        return min(beta, alpha_cur, alpha_prev)

    def _relayout(
        self, additions: list[tuple[dict[str, npt.NDArray[Any]], list[tuple[int, list[float]]]]]
    ) -> None:
        """Re-pack the arrays: drop dead slots, add new runs, sort by (R, seq), rebuild the rings."""
        v = self._v
        keep = np.flatnonzero(~v["dead"])
        h = self._hist
        b = h.last
        cat: dict[str, npt.NDArray[Any]] = {}
        for name, arr in v.items():
            pieces = [arr[keep]] + [add[0][name] for add in additions]
            cat[name] = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        n_old = int(keep.shape[0])
        new_ring_data: list[tuple[int, list[float]]] = []
        for add in additions:
            new_ring_data.extend(add[1])
        order = np.lexsort((cat["seq"], cat["R"])).astype(np.int64)
        for name in cat:
            v[name] = cat[name][order]
        n = int(order.shape[0])
        old_groups = {g.r: g for g in self._groups}
        old_col = np.full(n, -1, dtype=np.int64)  # column in the old group's ring, or -1 for a new run
        src = order
        is_old = src < n_old
        old_slot = keep[src[is_old]]
        cols = np.full(old_slot.shape[0], -1, dtype=np.int64)
        for g in self._groups:
            in_g = (old_slot >= g.lo) & (old_slot < g.hi)
            cols[in_g] = old_slot[in_g] - g.lo
        old_col[is_old] = cols
        groups: list[_Group] = []
        rs = v["R"]
        if n:
            bounds = np.flatnonzero(np.diff(rs)) + 1
            starts = np.concatenate(([0], bounds)).astype(np.int64)
            ends = np.concatenate((bounds, [n])).astype(np.int64)
        else:
            starts = ends = np.zeros(0, dtype=np.int64)
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            r = int(rs[lo])
            og = old_groups.get(r)
            if og is not None:
                a_cur, a_prev = og.alpha_cur, og.alpha_prev
            elif h.n:
                a_cur = int(h.alpha(float(h.tau[h.n - 1]), np.array([r]))[0])
                a_prev = int(h.alpha(float(h.tau[h.n - 2]), np.array([r]))[0]) if h.n > 1 else h.off
            else:
                a_cur = a_prev = h.end
            lo_ret = min(self._ring_need_from(r, a_cur, a_prev), b + 1)
            need = b + 2 - lo_ret
            cap = self._ring_rows(r, need)
            ring = np.zeros((cap, hi - lo))
            rows = np.arange(lo_ret, b + 1, dtype=np.int64)
            oc = old_col[lo:hi]
            olds = np.flatnonzero(oc >= 0)
            if og is not None and olds.shape[0] and rows.shape[0]:
                ocap = og.ring.shape[0]
                ring[np.ix_(rows % cap, olds)] = og.ring[np.ix_(rows % ocap, oc[olds])]
            for j in np.flatnonzero(oc < 0).tolist():
                fa, av = new_ring_data[int(src[lo + j]) - n_old]
                if not av:
                    continue
                for i, x in enumerate(av):
                    g_idx = fa + i
                    if g_idx >= lo_ret:
                        ring[g_idx % cap, j] = x
            groups.append(_Group(r, lo, hi, ring, a_cur, a_prev))
        self._groups = groups
        self._n = n
        self._ndead = 0
        self._lookup = None
        alive_w = v["W"]
        self._wvals = np.unique(alive_w).astype(np.int64) if n else np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ internals: stepping

    def _step_fallback(self, now: float, price: Any, volatility: Any, weight: Any) -> StepBatch:
        ids: list[int] = []
        res: list[ref.StepResult] = []
        its: list[int] = []
        convert: list[int] = []
        for rid in list(self._fallback):
            st, r = ref.step(self._fallback[rid], now, price, volatility, weight, self.config)
            ids.append(rid)
            res.append(r)
            its.append(int(st["iteration_count"]))
            if r.status == "completed":
                del self._fallback[rid]
                del self._seq_of_fallback[rid]
                self._completed[rid] = st
            else:
                self._fallback[rid] = st
                if r.status == "continue":
                    convert.append(rid)
        if convert:
            admit = []
            for rid in convert:
                p = _parse_state(rid, self._fallback[rid], self.symbol)
                p.vals["seq"] = self._seq_of_fallback[rid]
                if self._conforms(p):
                    admit.append(p)
            if admit:
                for p in admit:
                    del self._fallback[p.rid]
                    del self._seq_of_fallback[p.rid]
                self._admit(admit)
        status_of = {name: i for i, name in enumerate(STATUS_NAMES.tolist())}
        reason_of = {name: i for i, name in enumerate(REASON_NAMES.tolist())}
        return StepBatch(
            run_ids=np.asarray(ids, dtype=np.int64),
            status_code=np.asarray([status_of[r.status] for r in res], dtype=np.int8),
            reason_code=np.asarray([reason_of[r.reason] for r in res], dtype=np.int8),
            trade=np.asarray([r.trade for r in res], dtype=np.float64),
            position_direction=np.asarray([r.position_direction for r in res], dtype=np.int64),
            balance=np.asarray([r.balance for r in res], dtype=np.float64),
            apr=np.asarray([math.nan if r.apr is None else r.apr for r in res], dtype=np.float64),
            entropy=np.asarray([math.nan if r.entropy is None else r.entropy for r in res], dtype=np.float64),
            iteration_count=np.asarray(its, dtype=np.int64),
        )

    def _step_vector(
        self, now: float, p: float | None, sig: float | None, w: float, cap: int, skip: int
    ) -> StepBatch:
        v = self._v
        n = self._n
        h = self._hist
        dead = v["dead"]
        alive = ~dead
        any_dead = self._ndead > 0
        d = now - v["st"]
        s3 = d > v["md"]
        if any_dead:
            s3 &= alive
        status = np.zeros(n, dtype=np.int8)
        reason = np.zeros(n, dtype=np.int8)
        has = v["ntr"] > 0
        s3_slots = np.flatnonzero(s3)
        if s3_slots.shape[0]:
            v["it"][s3_slots] += 1
            v["vw"][s3_slots] = True
            self._complete(s3_slots, h.last)

        if skip != _R_NONE:
            status[:] = _ST_SKIPPED
            reason[:] = skip
            status[s3_slots] = _ST_COMPLETED
            reason[s3_slots] = _R_MAXDUR
            nan = np.full(n, math.nan)
            return self._make_batch(
                alive,
                status,
                reason,
                np.zeros(n),
                v["pos"].copy(),
                self._stored_balance(None),
                nan,
                nan.copy(),
            )
        assert p is not None and sig is not None

        # S2 for everyone stepped; S6: the shared history gets this tick's entry.
        stepped = ~s3
        if any_dead:
            stepped &= alive
        v["it"][stepped] += 1
        h.append(now, w)
        b = h.last

        # S7 metrics and APR.
        q, e, f = v["q"], v["e"], v["f"]
        b0 = v["b0"]
        bal = np.where(has, v["vs0"] + (((q * p) - e) - f), b0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            apr = (((bal - b0) / (d / 3600)) * 24 * 365.24) / b0
        apr = np.where((b0 > 0) & (d > 0), apr, 0.0)

        # S8: sign of apr_change from the previous rolling mean (exact, or certain within its error bound).
        am, ae = v["am"], v["ae"]
        surely_pos = (apr > am + ae) & (np.abs(am) > ae)
        unsure = (ae > 0) & ~surely_pos & ~(apr <= am - ae) & stepped
        rvals = np.asarray([g.r for g in self._groups], dtype=np.int64)
        alpha_r = h.alpha(now, rvals)
        beta_r = h.beta(now, rvals)
        for gi, g in enumerate(self._groups):
            self._ensure_ring(g, min(g.alpha_cur, int(beta_r[gi])), b)
        if unsure.any():
            self._exact_prev_means(np.flatnonzero(unsure), b - 1)
            surely_pos = (apr > am + ae) & (np.abs(am) > ae)
        acp = surely_pos
        apu = np.where(ae == 0, am, math.nan)
        v["apu"] = apu

        # S9–S10: ring write and sliding window sums (error-bounded), then the new rolling mean.
        self._slide(apr, alpha_r, b)

        # S12 goal and APR-target exit.
        mg, xg = v["mg"], v["xg"]
        vmin = p * v["mgw"]
        vmax = p * v["xgw"]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            s = (sig - vmin) / (vmax - vmin)
            g_raw = np.exp(s * v["lng"]) * mg
        goal = np.where(g_raw < mg, mg, np.where(g_raw > xg, xg, g_raw))
        goal = np.where(vmax == vmin, mg, goal)
        with np.errstate(invalid="ignore", over="ignore"):
            thr = v["aprt"] * goal
            near = np.abs(apr - thr) <= 1e-12 * np.abs(thr)
        near &= stepped & (vmax != vmin)
        if near.any():
            for i in np.flatnonzero(near).tolist():
                gi_ = ref.volatility_goal(
                    sig, p, float(v["mgw"][i]), float(v["xgw"][i]), float(mg[i]), float(xg[i])
                )
                thr[i] = v["aprt"][i] * gi_
        ex12 = (apr > thr) & stepped

        # S13 entropy from the shared history.
        hh = self._entropy(now, b)

        # S14 trading block.
        gate = (hh < v["hmax"]) & stepped & ~ex12
        buy = (v["swing"] ^ True) if w > 0 else v["swing"].copy()
        pos = v["pos"]
        posp = pos > 0
        posn = pos < 0
        pos0 = pos == 0
        sell = ~buy
        approved = pos0 | (acp & ((posp & buy) | (posn & sell))) | (~acp & ((posp & sell) | (posn & buy)))
        appr = gate & approved
        rev = appr & pos0 & (d > v["mdr"])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(has & (bal > 0), (np.abs(e) / v["vlev"]) / bal, 0.0)
        extends = (posp & buy) | (posn & sell)
        mlim = appr & ~rev & (ratio > v["mcmr"]) & extends
        apr_ge = apr >= 0
        apr_le = apr <= 0
        tc = (
            (apr_ge & (pos <= 0) & sell)
            | (apr_le & posn & buy)
            | (apr_ge & (pos >= 0) & buy)
            | (apr_le & posp & sell)
        )
        delta = np.where(buy, 1, -1)
        apos = np.abs(pos)
        allowed = (apos < cap) | (np.abs(pos + delta) < apos)
        trade_mask = appr & ~rev & ~mlim & tc & allowed
        trade = np.zeros(n)
        tr = np.flatnonzero(trade_mask)
        if tr.shape[0]:
            qq = (((b0[tr] * v["pw"][tr]) / p) * v["psc"][tr]) / v["bdiv"][tr]
            size = np.where(buy[tr], qq, -qq)
            value = p * size
            q[tr] = q[tr] + size
            e[tr] = e[tr] + value
            f[tr] = f[tr] + (np.abs(value) * v["vfee"][tr]) * 2
            v["ntr"][tr] += 1
            pos[tr] += delta[tr]
            trade[tr] = size
            self._log_append(v["seq"][tr], np.full(tr.shape[0], p), delta[tr].astype(np.int8), None)
            bal[tr] = v["vs0"][tr] + (((q[tr] * p) - e[tr]) - f[tr])

        # Book refresh (all paths but margin_limit) and results.
        refresh = stepped & ~mlim
        v["vp"][refresh] = p
        v["vw"][refresh] = True
        balance = bal
        at_stored = np.flatnonzero(mlim | s3)
        if at_stored.shape[0]:
            balance[at_stored] = self._stored_balance(at_stored)
        status[ex12 | rev] = _ST_COMPLETED
        reason[ex12] = _R_TARGET
        reason[rev] = _R_REVERSAL
        reason[mlim] = _R_MARGIN
        status[s3_slots] = _ST_COMPLETED
        reason[s3_slots] = _R_MAXDUR
        apr_out = np.where(s3, math.nan, apr)
        h_out = np.where(s3 | ex12, math.nan, hh)
        batch = self._make_batch(alive, status, reason, trade, pos.copy(), balance, apr_out, h_out)

        done = np.flatnonzero(ex12 | rev)
        if done.shape[0]:
            self._complete(done, b)
        # Everyone stepped has now left its loaded state behind.
        pend = v["pend"]
        if pend.any():
            if self._pend_ac or self._voms_raw:
                for rid in v["rid"][pend & stepped].tolist():
                    self._pend_ac.pop(rid, None)
                    self._voms_raw.pop(rid, None)
            pend[stepped] = False
        self._trim_history(b)
        return batch

    def _make_batch(
        self, alive: BOOL, status: Any, reason: Any, trade: F64, pos: I64, balance: F64, apr: F64, h: F64
    ) -> StepBatch:
        v = self._v
        if self._ndead or not alive.all():
            sel = np.flatnonzero(alive)
            rid = v["rid"][sel]
            status, reason, trade, pos = status[sel], reason[sel], trade[sel], pos[sel]
            balance, apr, h = balance[sel], apr[sel], h[sel]
            it = v["it"][sel]
        else:
            rid = v["rid"].copy()
            it = v["it"].copy()
        return StepBatch(
            run_ids=rid,
            status_code=status,
            reason_code=reason,
            trade=trade,
            position_direction=pos,
            balance=balance,
            apr=apr,
            entropy=h,
            iteration_count=it,
        )

    def _stored_balance(self, idx: I64 | None) -> F64:
        """Balance of the book as stored (its own price), or B0 without trades (§5.1)."""
        v = self._v
        sel = slice(None) if idx is None else idx
        out: F64 = np.where(
            v["ntr"][sel] > 0,
            v["vs0"][sel] + (((v["q"][sel] * v["vp"][sel]) - v["e"][sel]) - v["f"][sel]),
            v["b0"][sel],
        )
        return out

    def _complete(self, slots: I64, b_run: int) -> None:
        states = self._materialize(slots, b_run)
        for rid, st in zip(self._v["rid"][slots].tolist(), states, strict=True):
            self._completed[rid] = st
        self._kill(slots)

    def _ring_rows(self, r: int, need: int) -> int:
        """Ring rows: what the observed tick cadence needs for R + 1 minutes, never less than `need`.

        Sized close to the steady state (rings dominate memory) but not grown one row at a time while
        windows fill, which would copy the ring at every tick.
        """
        h = self._hist
        k = min(h.n, 64)
        predicted = 0
        if k >= 2:
            gap = float(np.median(np.diff(h.tau[h.n - k : h.n])))
            if gap > 0:
                predicted = int(((r + 1) * 60) / gap) + 5
        return max(need + 4, min(predicted, 4 * need + 16))

    def _ensure_ring(self, g: _Group, keep_from: int, b: int) -> None:
        """Grow a ring so rows keep_from … b fit (entries keep_from … b-1 are preserved)."""
        need = b - keep_from + 1
        cap = g.ring.shape[0]
        if need <= cap:
            return
        new_cap = self._ring_rows(g.r, need)
        ring = np.zeros((new_cap, g.ring.shape[1]))
        rows = np.arange(keep_from, b, dtype=np.int64)
        if rows.shape[0]:
            ring[rows % new_cap] = g.ring[rows % cap]
        g.ring = ring

    def _exact_prev_means(self, slots: I64, b_prev: int) -> None:
        """Replace the sliding estimate at entry b_prev by the exact sequential mean, for these runs."""
        v = self._v
        for g in self._groups:
            sel = slots[(slots >= g.lo) & (slots < g.hi)]
            if sel.shape[0] == 0:
                continue
            a0 = g.alpha_cur
            cols = sel - g.lo
            cap = g.ring.shape[0]
            rows = np.arange(a0, b_prev + 1, dtype=np.int64) % cap
            block = g.ring[np.ix_(rows, cols)]
            total = _seq_sum_columns(block)
            absum = _seq_sum_columns(np.abs(block))
            nz = np.count_nonzero(block, axis=0)
            k = b_prev - np.maximum(v["fa"][sel], a0) + 1
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = np.where(k > 0, total / k, 0.0)
            v["ssum"][sel] = total
            v["asum"][sel] = absum
            v["serr"][sel] = 2.02 * np.maximum(k, 1) * _U * absum
            v["nz"][sel] = nz
            v["am"][sel] = mean
            v["ae"][sel] = 0.0

    def _slide(self, apr: F64, alpha_r: I64, b: int) -> None:
        v = self._v
        n = self._n
        ssum, asum, serr, nz = v["ssum"], v["asum"], v["serr"], v["nz"]
        rounds: list[F64] = []
        a_run = np.empty(n, dtype=np.int64)
        for gi, g in enumerate(self._groups):
            cap = g.ring.shape[0]
            g.ring[b % cap] = apr[g.lo : g.hi]
            a_new = int(alpha_r[gi])
            for j, gl in enumerate(range(g.alpha_cur, a_new)):
                if j == len(rounds):
                    rounds.append(np.zeros(n))
                rounds[j][g.lo : g.hi] = g.ring[gl % cap]
            g.alpha_prev = g.alpha_cur
            g.alpha_cur = a_new
            a_run[g.lo : g.hi] = a_new
        for leave in rounds:
            np.subtract(ssum, leave, out=ssum)
            serr += _U * np.abs(ssum)
            np.subtract(asum, np.abs(leave), out=asum)
            serr += _U * np.abs(asum)
            nz -= leave != 0
        np.add(ssum, apr, out=ssum)
        serr += _U * np.abs(ssum)
        np.add(asum, np.abs(apr), out=asum)
        serr += _U * asum
        nz += apr != 0
        k = b - np.maximum(v["fa"], a_run) + 1
        kf = k.astype(np.float64)
        am = ssum / kf
        ae = 2.0 * (serr / kf) + (2.02 * _U) * asum + (4 * _U) * np.abs(am) + _TINY
        zero = nz == 0
        am[zero] = 0.0
        ae[zero] = 0.0
        v["am"] = am
        v["ae"] = ae

    def _entropy(self, now: float, b: int) -> F64:
        v = self._v
        h = self._hist
        wv = self._wvals
        n = self._n
        if n == 0:
            return np.zeros(0)
        aw = h.alpha(now, wv)
        table = np.zeros(int(wv[-1]) + 1, dtype=np.int64)
        table[wv] = aw
        a = np.maximum(v["fw"], table[v["W"]])
        valid = (b - a + 1) > v["S"]
        amin = int(a.min())
        span = b - amin + 1
        mark = np.zeros(max(span, 1), dtype=bool)
        mark[a[valid] - amin] = True
        htab = np.ones(max(span, 1))
        for off in np.flatnonzero(mark).tolist():
            htab[off] = h.entropy_of_window(amin + off, b)
        return np.where(valid, htab[a - amin], 1.0)

    def _trim_history(self, b: int) -> None:
        h = self._hist
        keep = h.end
        for g in self._groups:
            keep = min(keep, g.alpha_prev, g.alpha_cur)
        if self._groups:
            rv = np.asarray([g.r for g in self._groups], dtype=np.int64)
            keep = min(keep, int(h.beta(float(h.tau[h.n - 1]), rv).min()))
        if self._wvals.shape[0]:
            keep = min(keep, int(h.beta(float(h.tau[h.n - 1]), self._wvals).min()))
        horizon = int(np.searchsorted(h.tau[: h.n], float(h.tau[h.n - 1]) - _HISTORY_KEEP_S)) + h.off
        h.drop_before(min(keep, horizon))

    # ------------------------------------------------------------------ internals: states out

    def _ann_dicts(self, spec: Any, slots: I64) -> list[dict[str, Any]]:
        """`ann_params` of runs sharing one template, column by column: per-key scalar reads were the
        largest part of materialising a state."""
        m = int(slots.shape[0])
        columns: list[Iterable[Any]] = []
        for key, kind, const in spec:
            if kind != "c":
                columns.append(_restore_column(kind, self._v[_ANN_ARRAYS[key]][slots]))
            elif isinstance(const, str | int | float | bool | None):
                columns.append(itertools.repeat(const, m))
            else:
                columns.append([copy.deepcopy(const) for _ in range(m)])
        if not columns:
            return [{} for _ in range(m)]
        keys = [key for key, _, _ in spec]
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=False)]

    def _materialize(self, slots: I64, b_run: int) -> list[dict[str, Any]]:
        """Reference states of array runs whose last stepped entry is b_run (exact floats, §17.2).

        Lists are slices of the shared history and the R-group rings; `apr_last` and the previous mean
        behind `apr_change` are exact sequential sums, computed column-wise per R group.
        """
        v = self._v
        h = self._hist
        rids: list[int] = v["rid"][slots].tolist()
        fw = v["fw"][slots]
        fa = v["fa"][slots]
        pend: list[bool] = v["pend"][slots].tolist()
        trades = self._trades_of(slots[v["vw"][slots]])
        m = len(rids)
        weights: list[list[float]] = [[] for _ in range(m)]
        weights_ts: list[list[float]] = [[] for _ in range(m)]
        aprs: list[list[float]] = [[] for _ in range(m)]
        aprs_ts: list[list[float]] = [[] for _ in range(m)]
        apr_last: list[float] = [0.0] * m
        prev_mean: list[float] = [0.0] * m
        if h.n > 0 and b_run >= h.off:
            now_r = float(h.tau[b_run - h.off])
            now_p = float(h.tau[b_run - 1 - h.off]) if b_run - 1 >= h.off else now_r
            wn = v["W"][slots].astype(np.int64)
            for wv in np.unique(wn).tolist():
                base = int(h.beta(now_r, np.array([wv]))[0])
                w_all = h.weights(base, b_run + 1).tolist()
                t_all = h.times(base, b_run + 1).tolist()
                for i in np.flatnonzero(wn == wv).tolist():
                    off = max(int(fw[i]), base) - base
                    weights[i] = w_all[off:]
                    weights_ts[i] = t_all[off:]
            for g in self._groups:
                sel = np.flatnonzero((slots >= g.lo) & (slots < g.hi))
                if sel.shape[0] == 0:
                    continue
                cols = slots[sel] - g.lo
                cap = g.ring.shape[0]
                rr = np.array([g.r])
                beta = int(h.beta(now_r, rr)[0])
                alpha = int(h.alpha(now_r, rr)[0])
                alpha_p = int(h.alpha(now_p, rr)[0])
                block = g.ring[np.ix_(np.arange(beta, b_run + 1) % cap, cols)]
                t_all = h.times(beta, b_run + 1).tolist()
                lists = block.T.tolist()
                fa_sel = fa[sel]
                totals = _seq_sum_columns(block[alpha - beta :])
                k = b_run - np.maximum(fa_sel, alpha) + 1
                prev_block = g.ring[np.ix_(np.arange(alpha_p, b_run) % cap, cols)]
                prev_totals = _seq_sum_columns(prev_block)
                kp = (b_run - 1) - np.maximum(fa_sel, alpha_p) + 1
                with np.errstate(divide="ignore", invalid="ignore"):
                    means = np.where(k > 0, totals / k, 0.0).tolist()
                    pmeans = np.where(kp > 0, prev_totals / kp, 0.0).tolist()
                for j, i in enumerate(sel.tolist()):
                    off = max(int(fa_sel[j]), beta) - beta
                    aprs[i] = lists[j][off:]
                    aprs_ts[i] = t_all[off:]
                    apr_last[i] = means[j]
                    prev_mean[i] = pmeans[j]
        apu = v["apu"][slots].tolist()
        tmpls = v["tmpl"][slots]
        anns: list[dict[str, Any]] = [{} for _ in range(m)]
        for tid in np.unique(tmpls).tolist():
            pos = np.flatnonzero(tmpls == tid)
            for i, ann_i in zip(
                pos.tolist(), self._ann_dicts(self._templates[tid][0], slots[pos]), strict=True
            ):
                anns[i] = ann_i
        out = []
        for i, (slot, rid) in enumerate(zip(slots.tolist(), rids, strict=True)):
            _, st_kind, b0_kind, vkinds = self._templates[int(tmpls[i])]
            ann = anns[i]
            ac: Any
            al: Any
            if pend[i]:
                ac, al = self._pend_ac.get(rid, (0, 0))
            else:
                al = apr_last[i]
                prev = prev_mean[i] if math.isnan(apu[i]) else apu[i]
                if prev != 0:
                    x = (aprs[i][-1] - prev) / prev
                    if prev < 0:
                        x = x * -1
                    ac = x
                else:
                    ac = 0
            if v["vw"][slot]:
                voms: Any = {
                    "starting_balance": _restore(vkinds[0], v["vs0"][slot]),
                    "leverage": _restore(vkinds[1], v["vlev"][slot]),
                    "fee_rate": _restore(vkinds[2], v["vfee"][slot]),
                    "current_price": float(v["vp"][slot]),
                    "trades": trades.get(int(v["seq"][slot]), []),
                }
            else:
                voms = copy.deepcopy(self._voms_raw.get(rid))
            out.append(
                {
                    "start_time": _restore(st_kind, v["st"][slot]),
                    "start_balance": _restore(b0_kind, v["b0"][slot]),
                    "symbol": self.symbol,
                    "ann_params": ann,
                    "weights": weights[i],
                    "weights_timestamp": weights_ts[i],
                    "aprs": aprs[i],
                    "aprs_timestamp": aprs_ts[i],
                    "position_direction": int(v["pos"][slot]),
                    "apr_change": ac,
                    "apr_last": al,
                    "voms_state": voms,
                    "iteration_count": int(v["it"][slot]),
                }
            )
        return out


def _restore_column(kind: str, values: npt.NDArray[Any]) -> list[Any]:
    """`_restore` over a column, equal value for value."""
    return [int(x) for x in values.tolist()] if kind == "i" else [float(x) for x in values.tolist()]


def _copy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(state))


def _concat_batches(parts: list[StepBatch]) -> StepBatch:
    return StepBatch(
        run_ids=np.concatenate([x.run_ids for x in parts]),
        status_code=np.concatenate([x.status_code for x in parts]),
        reason_code=np.concatenate([x.reason_code for x in parts]),
        trade=np.concatenate([x.trade for x in parts]),
        position_direction=np.concatenate([x.position_direction for x in parts]),
        balance=np.concatenate([x.balance for x in parts]),
        apr=np.concatenate([x.apr for x in parts]),
        entropy=np.concatenate([x.entropy for x in parts]),
        iteration_count=np.concatenate([x.iteration_count for x in parts]),
    )
