"""The validated configuration of one process, with the mode-dependent defaults resolved."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url

from ttt.config import resolved
from ttt.config.models import Config, Secrets
from ttt.config.urls import redact_url, url_password

REDACTED = "***"


def _redact_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_secrets(v) for k, v in value.items()}
    if isinstance(value, SecretStr):
        return REDACTED
    return value


def _redact_urls(value: Any) -> Any:
    """Mask passwords typed into URLs of config.yml: they are secrets even in the wrong file."""
    if isinstance(value, dict):
        return {k: _redact_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_urls(v) for v in value]
    if isinstance(value, str) and "@" in value:
        return redact_url(value)
    return value


def _secret_leaves(model: BaseModel) -> list[str]:
    out: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out.extend(_secret_leaves(value))
        elif isinstance(value, SecretStr):
            out.append(value.get_secret_value())
        elif isinstance(value, dict):
            out.extend(v.get_secret_value() for v in value.values() if isinstance(v, SecretStr))
    return out


def _with_password(url: str, password: SecretStr | None, *, hide: bool) -> str:
    parsed = make_url(url)
    if password is not None and parsed.password is None:
        parsed = parsed.set(password=password.get_secret_value())
    return parsed.render_as_string(hide_password=hide)


def _redis_with_password(url: str, password: SecretStr | None) -> str:
    parts = urlsplit(url)
    if password is None or parts.password is not None or parts.scheme not in ("redis", "rediss"):
        return url
    userinfo = quote(parts.username or "", safe="") + ":" + quote(password.get_secret_value(), safe="")
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{userinfo}@{host}").geturl()


@dataclass(frozen=True, repr=False)
class Settings:
    """What `load_settings` returns: the effective configuration, secrets, and what was noticed on the way.

    `repr` and `str` show no configuration values at all, so a stray print or log of a Settings object
    cannot leak a password typed into a URL.
    """

    config: Config
    secrets: Secrets
    process: str = "run"
    warnings: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Settings(process={self.process!r}, mode={self.config.mode!r}, sources={list(self.sources)!r}, "
            f"warnings={len(self.warnings)}, config_hash={self.config_hash()[:12]!r})"
        )

    __str__ = __repr__

    # ---------------------------------------------------------------------------------- serialised forms

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON of the effective configuration; secrets are not part of it."""
        canonical = json.dumps(
            self.config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def redacted_dict(self) -> dict[str, Any]:
        """Effective configuration, secrets as "***" when set (None when unset), and the resolved defaults."""
        return {
            "config": _redact_urls(self.config.model_dump(mode="json")),
            "secrets": _redact_secrets(self.secrets.model_dump(mode="python")),
            "resolved": self.resolved_dict(),
        }

    def resolved_dict(self) -> dict[str, Any]:
        return {
            "database.auto_migrate": self.auto_migrate,
            "cache.backend": self.cache_backend,
            "observability.log_format": self.log_format,
            "portfolio.quorum.embedded_observer": self.embedded_observer,
            "portfolio.quorum.sources": self.quorum_sources,
            "portfolio.gateway.url": self.gateway_url,
            "observer.hip3_dexes": self.observer_hip3_dexes,
            "embedded.workers": self.embedded_workers(),
            "market_data.price.mode": self.price_mode,
            "observability.metrics_port": self.metrics_port,
        }

    def secret_values(self) -> list[str]:
        """Every secret value that is set: for the log masking filter, never for display."""
        values = _secret_leaves(self.secrets)
        for url in (self.config.database.url, self.config.cache.redis_url, self.config.celery.broker_url):
            password = url_password(url)
            if password:
                values.append(password)
        return values

    # ---------------------------------------------------------------------------------- resolved values

    @property
    def auto_migrate(self) -> bool:
        return resolved.auto_migrate(self.config)

    @property
    def cache_backend(self) -> str:
        return resolved.cache_backend(self.config)

    @property
    def log_format(self) -> str:
        return resolved.log_format(self.config)

    @property
    def embedded_observer(self) -> bool:
        return resolved.embedded_observer(self.config)

    @property
    def quorum_sources(self) -> int:
        return resolved.quorum_sources(self.config)

    @property
    def gateway_url(self) -> str:
        return resolved.gateway_url(self.config)

    @property
    def observer_hip3_dexes(self) -> list[str]:
        return resolved.observer_hip3_dexes(self.config)

    @property
    def price_mode(self) -> str:
        return resolved.price_mode(self.config)

    @property
    def metrics_port(self) -> int | None:
        return resolved.metrics_port(self.config, self.process)

    def embedded_workers(self, cpu_count: int | None = None) -> int:
        return resolved.embedded_workers(self.config, cpu_count)

    def celery_concurrency(self, cpu_count: int | None = None) -> int:
        return resolved.celery_concurrency(self.config, cpu_count)

    def database_url(self, *, hide_password: bool = False) -> str:
        """`database.url` with `secrets.database.password` merged in when the URL has none."""
        return _with_password(self.config.database.url, self.secrets.database.password, hide=hide_password)

    def redis_url(self) -> str:
        """`cache.redis_url` with `secrets.redis.password` merged in when the URL has none."""
        return _redis_with_password(self.config.cache.redis_url, self.secrets.redis.password)

    def broker_url(self) -> str:
        """`celery.broker_url` with `secrets.redis.password` merged in when the URL has none."""
        return _redis_with_password(self.config.celery.broker_url, self.secrets.redis.password)
