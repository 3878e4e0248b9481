"""Alembic environment, configured programmatically by `ttt.adapters.db.migrate` (no alembic.ini).

The caller hands over an open connection in `config.attributes["connection"]`; offline SQL generation is
not offered because every supported backend is migrated online.
"""

from __future__ import annotations

from alembic import context

from ttt.adapters.db.models import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run migrations through `3t db upgrade` (ttt.adapters.db.migrate.upgrade)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=False,
)
with context.begin_transaction():
    context.run_migrations()
