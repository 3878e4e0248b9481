"""The `Cache` contract (services.md §5), run identically against MemoryCache and RedisCache."""

from __future__ import annotations

import math
import re
import time

import pytest

from tests.cache.conftest import CacheCase
from ttt.adapters.cache.errors import CacheError
from ttt.ports import Cache

ID_RE = re.compile(r"^(\d+)-(\d+)$")


def _id(entry_id: str) -> tuple[int, int]:
    m = ID_RE.match(entry_id)
    assert m, f"stream id {entry_id!r} is not <ms>-<seq>"
    return int(m.group(1)), int(m.group(2))


def test_implements_the_port(cache_case: CacheCase) -> None:
    assert isinstance(cache_case.cache, Cache)
    assert cache_case.cache.ping() is True


def test_get_set_overwrite(cache_case: CacheCase) -> None:
    c = cache_case.cache
    assert c.get("price:BTC") is None
    assert c.set("price:BTC", b'{"price": 1}') is True
    assert c.get("price:BTC") == b'{"price": 1}'
    assert c.set("price:BTC", b"2") is True
    assert c.get("price:BTC") == b"2"


def test_str_values_are_stored_as_utf8(cache_case: CacheCase) -> None:
    c = cache_case.cache
    c.set("s", "Zürich €")
    assert c.get("s") == b"Z\xc3\xbcrich \xe2\x82\xac"


def test_binary_values_round_trip(cache_case: CacheCase) -> None:
    blob = bytes(range(256)) * 4
    cache_case.cache.set("shard:BTC:0", blob)
    assert cache_case.cache.get("shard:BTC:0") == blob


def test_set_nx_only_writes_when_absent(cache_case: CacheCase) -> None:
    c = cache_case.cache
    assert c.set("weight:BTC:100", "0.5", 120, nx=True) is True
    assert c.set("weight:BTC:100", "-0.5", 120, nx=True) is False
    assert c.get("weight:BTC:100") == b"0.5"


def test_set_nx_succeeds_after_the_old_value_expired(cache_case: CacheCase) -> None:
    c = cache_case.cache
    assert c.set("k", "old", 0.2, nx=True)
    cache_case.advance(0.35)
    assert c.set("k", "new", 0.2, nx=True) is True
    assert c.get("k") == b"new"


def test_delete_counts_only_existing_keys(cache_case: CacheCase) -> None:
    c = cache_case.cache
    c.set("a", "1")
    c.set("b", "2")
    assert c.delete("a", "b", "missing") == 2
    assert c.get("a") is None and c.get("b") is None
    assert c.delete("a") == 0
    assert c.delete() == 0


def test_get_many_keeps_order_and_reports_missing(cache_case: CacheCase) -> None:
    c = cache_case.cache
    c.set("x", "1")
    c.set("z", "3")
    assert c.get_many(["x", "y", "z", "x"]) == [b"1", None, b"3", b"1"]
    assert c.get_many([]) == []


def test_set_many_writes_every_key(cache_case: CacheCase) -> None:
    c = cache_case.cache
    c.set_many({"tick:BTC": b"b", "tick:ETH": "e"})
    assert c.get_many(["tick:BTC", "tick:ETH"]) == [b"b", b"e"]
    assert c.ttl("tick:BTC") is None
    c.set_many({})


def test_set_many_with_ttl_expires_together(cache_case: CacheCase) -> None:
    c = cache_case.cache
    c.set_many({"p:1": "a", "p:2": "b"}, ttl_s=0.5)
    for key in ("p:1", "p:2"):
        remaining = c.ttl(key)
        assert remaining is not None and 0 < remaining <= 0.5
    cache_case.advance(0.65)
    assert c.get_many(["p:1", "p:2"]) == [None, None]


def test_ttl_expiry(cache_case: CacheCase) -> None:
    c = cache_case.cache
    c.set("hb:feed:1", "{}", 0.5)
    c.set("keep", "forever")
    assert c.get("hb:feed:1") == b"{}"
    cache_case.advance(0.65)
    assert c.get("hb:feed:1") is None
    assert c.ttl("hb:feed:1") is None
    assert c.get_many(["hb:feed:1", "keep"]) == [None, b"forever"]
    assert c.delete("hb:feed:1") == 0


def test_ttl_reports_remaining_seconds(cache_case: CacheCase) -> None:
    c = cache_case.cache
    assert c.ttl("missing") is None
    c.set("plain", "v")
    assert c.ttl("plain") is None
    c.set("timed", "v", 100)
    remaining = c.ttl("timed")
    assert remaining is not None and 99.0 < remaining <= 100.0
    cache_case.advance(0.3)
    later = c.ttl("timed")
    assert later is not None and later <= 100.0 - 0.3 + 0.002


def test_plain_set_clears_an_old_expiry(cache_case: CacheCase) -> None:
    """Redis semantics: SET without PX drops the TTL; the memory backend must not keep it."""
    c = cache_case.cache
    c.set("k", "v", 0.2)
    c.set("k", "w")
    assert c.ttl("k") is None
    cache_case.advance(0.35)
    assert c.get("k") == b"w"


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_non_positive_ttl_is_rejected(cache_case: CacheCase, bad: float) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        cache_case.cache.set("k", "v", bad)
    assert cache_case.cache.get("k") is None


def test_non_bytes_value_is_rejected_naming_the_key(cache_case: CacheCase) -> None:
    with pytest.raises(TypeError, match="'k'"):
        cache_case.cache.set("k", 3)  # type: ignore[arg-type]


def test_stream_append_range_revrange(cache_case: CacheCase) -> None:
    c = cache_case.cache
    ids = [
        c.xadd("stream:prices", {"symbol": "BTC", "price": 100_000.5 + i, "ts": 1_700_000_000 + i}, 100)
        for i in range(5)
    ]
    parsed = [_id(i) for i in ids]
    assert parsed == sorted(parsed) and len(set(parsed)) == 5
    now_ms = time.time() * 1000
    assert all(abs(ms - now_ms) < 60_000 for ms, _ in parsed), "the <ms> part is the append time in ms"

    forward = c.xrange("stream:prices")
    assert [i for i, _ in forward] == ids
    assert forward[0][1] == {"symbol": "BTC", "price": "100000.5", "ts": "1700000000"}
    assert forward[4][1]["price"] == "100004.5"

    backward = c.xrevrange("stream:prices")
    assert backward == list(reversed(forward))
    assert c.xrange("stream:prices", count=2) == forward[:2]
    assert c.xrevrange("stream:prices", count=2) == [forward[4], forward[3]]
    assert c.xrange("stream:prices", count=0) == []
    assert c.xlen("stream:prices") == 5


def test_missing_stream_is_empty(cache_case: CacheCase) -> None:
    c = cache_case.cache
    assert c.xrange("stream:none") == []
    assert c.xrevrange("stream:none", count=3) == []
    assert c.xlen("stream:none") == 0


def test_stream_trimming_keeps_the_newest_entries(cache_case: CacheCase) -> None:
    c = cache_case.cache
    maxlen = 10
    total = maxlen + 2 * cache_case.trim_slack + 25
    ids = [c.xadd("stream:events", {"n": n}, maxlen) for n in range(total)]

    length = c.xlen("stream:events")
    if cache_case.exact_trim:
        assert length == maxlen
    else:
        # Approximate MAXLEN: never fewer than maxlen, never more than one stream node above it.
        assert maxlen <= length <= maxlen + cache_case.trim_slack
        assert length < total
    kept = c.xrange("stream:events")
    assert [i for i, _ in kept] == ids[-length:]
    assert [f["n"] for _, f in kept] == [str(n) for n in range(total - length, total)]
    newest = c.xrevrange("stream:events", count=maxlen)
    assert [i for i, _ in newest] == list(reversed(ids[-maxlen:]))


def test_stream_field_types(cache_case: CacheCase) -> None:
    c = cache_case.cache
    with pytest.raises(TypeError, match="usable"):
        c.xadd("stream:balance", {"usable": True}, 10)
    with pytest.raises(ValueError, match="maxlen"):
        c.xadd("stream:balance", {"a": "1"}, 0)
    with pytest.raises(ValueError, match="at least one field"):
        c.xadd("stream:balance", {}, 10)
    assert c.xlen("stream:balance") == 0


def test_wrong_type_is_an_error_not_a_value(cache_case: CacheCase) -> None:
    c = cache_case.cache
    c.xadd("stream:orders", {"a": "1"}, 10)
    c.set("plain", "v")
    with pytest.raises(CacheError):
        c.get("stream:orders")
    with pytest.raises(CacheError):
        c.xadd("plain", {"a": "1"}, 10)
    with pytest.raises(CacheError):
        c.xrange("plain")
    assert c.delete("stream:orders") == 1
    assert c.xlen("stream:orders") == 0
