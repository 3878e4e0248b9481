"""Startup check of the cache Redis eviction policy (services.md §5 "Redis requirements", SV-07).

Under an `allkeys-*` policy Redis may evict lock keys and shard state under memory pressure: two holders
of one lock, or a population silently restarted. That is refused unless the operator opted in.
"""

from __future__ import annotations

import redis

from ttt.adapters.cache.redis_cache import RedisClient, describe_client, translate_errors
from ttt.errors import ConfigError

ALLOW_KEY = "cache.allow_allkeys_eviction"


def check_eviction_policy(redis_client: RedisClient, allow_allkeys: bool) -> str | None:
    """Raise `ConfigError` for an `allkeys-*` policy unless allowed; return a warning to log, or None.

    A refused `CONFIG GET` (renamed command, ACL, managed Redis) gives a warning, not an error: the
    policy cannot be known, and the operator may have no way to grant the permission.
    """
    where = describe_client(redis_client)
    with translate_errors(redis_client, "CONFIG GET maxmemory-policy"):
        try:
            raw = redis_client.config_get("maxmemory-policy")
        except redis.ResponseError as exc:
            return (
                f"could not read the maxmemory-policy of the cache Redis at {where} (CONFIG GET refused: "
                f"{exc}); make sure it is noeviction or volatile-*, as locks and state must never be evicted"
            )
    policy = _policy_value(raw)
    if policy is None:
        return (
            f"the cache Redis at {where} did not report a maxmemory-policy; make sure it is noeviction or "
            "volatile-*"
        )
    if policy.startswith("allkeys-") and not allow_allkeys:
        raise ConfigError(
            [
                f"{ALLOW_KEY}: the cache Redis at {where} runs with maxmemory-policy {policy}, which may "
                "evict locks and state; set it to noeviction (or a volatile-* policy), or set "
                f"{ALLOW_KEY}: true to accept the risk"
            ]
        )
    return None


def _policy_value(raw: object) -> str | None:
    if not isinstance(raw, dict):
        return None
    for name, value in raw.items():
        text_name = name.decode() if isinstance(name, bytes) else str(name)
        if text_name == "maxmemory-policy":
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
