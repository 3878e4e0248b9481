"""Housekeeping services of the schedule table (services.md §2.1): DB-derived metrics and table retention."""
