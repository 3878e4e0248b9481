"""3T — Tactical Trend Trader."""

__version__ = "0.1.0"
