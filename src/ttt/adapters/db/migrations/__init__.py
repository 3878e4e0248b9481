"""Alembic migrations of the 3T schema (additive only)."""
