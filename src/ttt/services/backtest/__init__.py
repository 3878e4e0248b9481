"""`3t backtest` (services.md §10): replay through the full engine, metrics and baselines."""
