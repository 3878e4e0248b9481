"""Settings → portfolio service configuration: one place for the CLI, the embedded and the Celery runtimes."""

from __future__ import annotations

import socket
from typing import Any

from ttt.config import Settings
from ttt.errors import PreconditionError
from ttt.services.products_sync import venue_from_config


def exchange_name(settings: Settings) -> str:
    """The `exchanges.name` of the configured venue, shared with products sync and the gateway."""
    return venue_from_config(settings.config.exchange).name


def wallet(settings: Settings) -> str:
    ex = settings.config.exchange
    if ex.kind == "paper":
        return ex.paper.wallet.lower()
    address = settings.secrets.exchanges.hyperliquid.wallet_address
    if address is None:
        raise PreconditionError("secrets.exchanges.hyperliquid.wallet_address is required to read positions")
    return address.get_secret_value().lower()


def actor(process: str = "cli") -> str:
    return f"{process}@{socket.gethostname()}"[:128]


def reconcile_settings(settings: Settings, process: str = "cli") -> Any:
    """ReconcileSettings from the configuration (portfolio.md §19)."""
    from ttt.domain.calendar import CalendarConfig
    from ttt.domain.desired import DesiredConfig
    from ttt.domain.quorum import ObserverConfig
    from ttt.domain.symbol_plan import PlanConfig
    from ttt.services.portfolio.reconcile import ReconcileSettings

    c = settings.config
    p = c.portfolio
    th = c.trading_hours
    return ReconcileSettings(
        universe=tuple(c.universe.symbols),
        exchange_name=exchange_name(settings),
        wallet=wallet(settings),
        desired=DesiredConfig(
            live_pnl_threshold=p.live_pnl_threshold,
            run_freshness_s=p.run_freshness_s,
            providence_max_silence_s=p.providence_max_silence_s,
            risk_pos_percentage=p.risk_pos_percentage,
            kelly_threshold=p.kelly.threshold,
            kelly_probationary_multiplier=p.kelly.probationary_multiplier,
            invert_decisions=p.invert_decisions,
            can_go_long=p.can_go_long,
            can_go_short=p.can_go_short,
        ),
        plan=PlanConfig(
            minimum_trade_threshold_usd=p.minimum_trade_threshold_usd,
            margin_cap_multiplier=p.margin_cap_multiplier,
            max_margin_usage=p.max_margin_usage_percentage,
            client_id_prefix=c.orders.client_id_prefix,
        ),
        kelly_min_samples=p.kelly.min_samples,
        balance_max_age_s=p.balance_max_age_s,
        price_max_age_s=p.price_max_age_s,
        live_price_max_age_s=c.market_data.price.max_age_s,
        cycle_lock_ttl_s=p.cycle_lock_ttl_s,
        busy_retry_s=p.busy_retry_s,
        quorum_k=p.quorum.k,
        local_max_age_s=p.quorum.local_max_age_s,
        observer=ObserverConfig(max_age_s=p.quorum.observer_max_age_s, future_skew_s=p.quorum.future_skew_s),
        observer_timeout_s=p.quorum.observer_timeout_s,
        calendar=CalendarConfig(th.calendar, th.timezone, th.fallback_timezone, th.friday_close_hour),
        order_style=c.orders.style,
        actor=actor(process),
    )


def take_profit_config(settings: Settings) -> Any:
    from ttt.domain.takeprofit import TakeProfitConfig

    t = settings.config.take_profit
    return TakeProfitConfig(
        enabled=t.enabled,
        threshold=t.threshold,
        reward_multiple=t.reward_multiple,
        median_window=t.median_window,
        max_reading_age_s=t.max_reading_age_s,
        cooldown_s=t.cooldown_s,
        forced_cycle_delays_s=tuple(t.forced_cycle_delays_s),
        forced_cycle_max_lateness_s=t.forced_cycle_max_lateness_s,
    )
