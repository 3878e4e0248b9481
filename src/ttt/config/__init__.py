"""Configuration: `config.yml`, `secrets.yml` and `TTT_*` variables (services.md §11).

Use `load_settings(...)` once at process start; it returns a validated `Settings` or raises
`ttt.errors.ConfigError` naming every bad key.
"""

from __future__ import annotations

from ttt.config.loader import load_settings
from ttt.config.models import Config, Secrets
from ttt.config.resolved import PROCESSES
from ttt.config.settings import Settings

__all__ = ["PROCESSES", "Config", "Secrets", "Settings", "load_settings"]
