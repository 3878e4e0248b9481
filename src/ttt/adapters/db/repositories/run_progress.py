"""The periodic and trade writes of a shard tick (providence.md §9.2): one multi-row UPDATE per chunk.

This is the hottest write of the system (every trading run's whole state, every tick), so each dialect
gets the statement its server executes best, all with the same meaning: set state, direction, count,
update time and live PnL of the given runs, and never touch an ended run.

* MariaDB/MySQL: `UPDATE runs SET col = CASE id WHEN … END … WHERE id IN (…)` with the values rendered as
  literals that need no escaping: integers, finite floats, fixed-format timestamps, and the state as a
  plain quoted literal when it holds no quote, backslash or `%` (so it reads the same under any
  `sql_mode` and through the driver's formatting), as a hex literal otherwise. PyMySQL's per-character
  escaping of kilobytes of JSON per row cost more than the update itself, and hex doubles the bytes to
  send and parse; a JOIN to a derived table of the rows would make the server build an on-disk
  temporary table. On MariaDB the column's `CHECK (json_valid(…))` is skipped for this one statement:
  every state is strict JSON by construction (`StrictJsonText`, from a strict encoder) or parsed
  strictly here first, and the database is the part of the system that does not scale out. The column is
  compressed there (migration 0004); this statement compresses at zlib's fastest level, since the state
  is written again within 50 ticks.
* PostgreSQL: `UPDATE … FROM unnest(arrays) AS v(…)`, six bound array parameters.
* SQLite (the embedded runtime): the same CASE statement with bound parameters, cached per size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ttt.adapters.db.models import Run, table_of
from ttt.adapters.db.types import as_utc, check_strict_json
from ttt.ports import RunProgress, StrictJsonText

RUNS = table_of(Run)
_C = RUNS.c

CHUNK = 512


def update_progress(conn: Connection, progress: Sequence[RunProgress]) -> int:
    """Rows matched (an ended run matches nothing)."""
    write = _writer(conn.dialect.name)
    written = 0
    for i in range(0, len(progress), CHUNK):
        chunk = progress[i : i + CHUNK]
        for p in chunk:
            _check_state(p.run_state)
        written += write(conn, chunk)
    return written


def _writer(dialect: str) -> Callable[[Connection, Sequence[RunProgress]], int]:
    if dialect in ("mysql", "mariadb"):
        return _write_mysql
    if dialect == "postgresql":
        return _write_postgresql
    if dialect == "sqlite":
        return _write_case
    raise ValueError(f"unsupported database dialect {dialect!r}: use SQLite, MariaDB or PostgreSQL")


def _check_state(text: str) -> None:
    """The state is stored as given, and must be strict JSON: NaN and infinities are refused (as JsonText
    does), and so is any text the database's own check would refuse (MariaDB's is skipped, see above)."""
    if not isinstance(text, str):
        raise TypeError(f"run_state needs a str of JSON, got {type(text).__name__}")
    if type(text) is StrictJsonText:
        return
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        check_strict_json(text)
        raise ValueError("value cannot be stored as JSON: run_state is not JSON") from None


def _finite(value: float, what: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {v!r}")
    return v


def _mysql_text(text: str) -> str:
    """A literal that means `text` whatever the `sql_mode`: without a quote or a backslash nothing in it
    is special to the server (JSON has no raw NUL), and without `%` nothing is special to the driver's
    `%`-formatting; anything else goes as hex."""
    if "'" in text or "\\" in text or "%" in text:
        return f"CONVERT(X'{text.encode('utf-8').hex()}' USING utf8mb4)"
    return f"_utf8mb4'{text}'"


def _write_mysql(conn: Connection, chunk: Sequence[RunProgress]) -> int:
    ids = [int(p.run_id) for p in chunk]
    states = [_mysql_text(p.run_state) for p in chunk]
    dirs = [str(int(p.position_direction)) for p in chunk]
    counts = [str(int(p.iteration_count)) for p in chunk]
    times = [f"TIMESTAMP'{as_utc(p.update_time).strftime('%Y-%m-%d %H:%M:%S.%f')}'" for p in chunk]
    pnls = [repr(_finite(p.live_pnl, "live_pnl")) for p in chunk]

    def case(values: list[str]) -> str:
        return "CASE id " + " ".join(f"WHEN {i} THEN {v}" for i, v in zip(ids, values, strict=True)) + " END"

    skip_check = (
        "SET STATEMENT check_constraint_checks = 0, column_compression_zlib_level = 1 FOR "
        if conn.dialect.is_mariadb
        else ""
    )
    sql = (
        f"{skip_check}UPDATE runs SET run_state = {case(states)}, "
        f"position_direction = {case(dirs)}, iteration_count = {case(counts)}, "
        f"update_time = {case(times)}, live_pnl = {case(pnls)} "
        f"WHERE id IN ({','.join(map(str, ids))}) AND end_time IS NULL"
    )
    return int(conn.exec_driver_sql(sql).rowcount)


_PG_PROGRESS = sa.text(
    "UPDATE runs SET run_state = CAST(v.s AS JSONB), position_direction = v.p, iteration_count = v.c, "
    "update_time = v.u, live_pnl = v.l "
    "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:states AS TEXT[]), CAST(:dirs AS INTEGER[]), "
    "CAST(:counts AS BIGINT[]), CAST(:times AS TIMESTAMPTZ[]), CAST(:pnls AS DOUBLE PRECISION[])) "
    "AS v(id, s, p, c, u, l) "
    "WHERE runs.id = v.id AND runs.end_time IS NULL"
)


def _write_postgresql(conn: Connection, chunk: Sequence[RunProgress]) -> int:
    params = {
        "ids": [int(p.run_id) for p in chunk],
        "states": [p.run_state for p in chunk],
        "dirs": [int(p.position_direction) for p in chunk],
        "counts": [int(p.iteration_count) for p in chunk],
        "times": [as_utc(p.update_time) for p in chunk],
        "pnls": [_finite(p.live_pnl, "live_pnl") for p in chunk],
    }
    return int(conn.execute(_PG_PROGRESS, params).rowcount)


def _bucket(n: int) -> int:
    """Chunk sizes are padded to powers of two so only a handful of statements are ever compiled."""
    size = 8
    while size < n:
        size *= 2
    return size


@functools.lru_cache(maxsize=16)
def _case_statement(size: int) -> Any:
    """`UPDATE runs SET col = CASE id WHEN :i0 THEN :s0 … END … WHERE id IN (:i0 …) AND end_time IS NULL`,
    built once per size: building and compiling a statement with thousands of parameters costs more than
    executing it."""
    ids = [sa.bindparam(f"i{k}", type_=_C.id.type) for k in range(size)]

    def column(col: Any, prefix: str) -> Any:
        whens = [(_C.id == ids[k], sa.bindparam(f"{prefix}{k}", type_=col.type)) for k in range(size)]
        return sa.case(*whens, else_=col)

    return (
        sa.update(RUNS)
        .where(_C.id.in_(ids), _C.end_time.is_(None))
        .values(
            run_state=column(_C.run_state, "s"),
            position_direction=column(_C.position_direction, "p"),
            iteration_count=column(_C.iteration_count, "c"),
            update_time=column(_C.update_time, "u"),
            live_pnl=column(_C.live_pnl, "l"),
        )
    )


def _write_case(conn: Connection, chunk: Sequence[RunProgress]) -> int:
    rows = list(chunk)
    size = _bucket(len(rows))
    rows += [rows[-1]] * (size - len(rows))  # a repeated row matches nothing new
    params: dict[str, Any] = {}
    for k, p in enumerate(rows):
        params[f"i{k}"] = int(p.run_id)
        params[f"s{k}"] = p.run_state
        params[f"p{k}"] = int(p.position_direction)
        params[f"c{k}"] = int(p.iteration_count)
        params[f"u{k}"] = as_utc(p.update_time)
        params[f"l{k}"] = _finite(p.live_pnl, "live_pnl")
    return int(conn.execute(_case_statement(size), params).rowcount)
