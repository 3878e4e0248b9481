"""SV-07: an `allkeys-*` eviction policy on the cache Redis is a startup error unless explicitly allowed.

Runs against a private redis-server started here; the shared server's settings are never changed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.cache.cache_support import private_redis_server
from ttt.adapters.cache.policy import check_eviction_policy
from ttt.adapters.cache.redis_cache import make_redis_client
from ttt.errors import ConfigError, ExitCode


@pytest.fixture(scope="module")
def lru_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("redis-sv07")
    with private_redis_server(workdir, "--maxmemory-policy", "allkeys-lru") as url:
        yield url


@pytest.fixture
def client(lru_redis: str) -> Iterator[redis.Redis]:
    c = make_redis_client(lru_redis)
    c.config_set("maxmemory-policy", "allkeys-lru")
    yield c
    c.close()


def test_sv07_allkeys_lru_is_a_config_error_naming_the_key(client: redis.Redis) -> None:
    with pytest.raises(ConfigError) as err:
        check_eviction_policy(client, allow_allkeys=False)
    assert err.value.exit_code == ExitCode.USAGE
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("cache.allow_allkeys_eviction")
    assert "allkeys-lru" in str(err.value)


def test_sv07_allowed_when_the_operator_opts_in(client: redis.Redis) -> None:
    assert check_eviction_policy(client, allow_allkeys=True) is None


@pytest.mark.parametrize("policy", ["allkeys-random", "allkeys-lfu"])
def test_every_allkeys_policy_is_refused(client: redis.Redis, policy: str) -> None:
    client.config_set("maxmemory-policy", policy)
    with pytest.raises(ConfigError, match=policy):
        check_eviction_policy(client, allow_allkeys=False)


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru", "volatile-ttl"])
def test_safe_policies_pass(client: redis.Redis, policy: str) -> None:
    client.config_set("maxmemory-policy", policy)
    assert check_eviction_policy(client, allow_allkeys=False) is None


def test_refused_config_get_gives_a_warning(client: redis.Redis, lru_redis: str) -> None:
    client.acl_setuser(
        "noconfig", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"], reset=True
    )
    limited = make_redis_client(lru_redis.replace("redis://", "redis://noconfig:pw@"))
    try:
        assert limited.ping()
        warning = check_eviction_policy(limited, allow_allkeys=False)
    finally:
        limited.close()
        client.acl_deluser("noconfig")
    assert warning is not None
    assert "maxmemory-policy" in warning and "CONFIG GET refused" in warning
