"""MariaDB stores `runs.run_state` compressed (column compression, zlib), so a million runs fit in memory.

An aged state is 12–16 KB of JSON: uncompressed, InnoDB keeps it on an overflow page of its own, ~22 KB a
run, and a million runs outgrow any buffer pool this class of machine can give. Compressed it is ~5 KB and
stays in the row (bench/shard_step.py has the figures). The column keeps its type, its JSON check and every
value; clients read and write plain text as before. PostgreSQL already compresses such values (TOAST) and
SQLite is the single-process store, so they are unchanged. Nothing is removed (services.md §4.1); on a large
table the ALTER copies it once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

COMPRESSED_RUN_STATE = (
    "ALTER TABLE runs MODIFY run_state LONGTEXT COMPRESSED CHARACTER SET utf8mb4 COLLATE utf8mb4_bin "
    "NOT NULL CHECK (json_valid(run_state))"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "mysql" and getattr(bind.dialect, "is_mariadb", False):
        op.execute(COMPRESSED_RUN_STATE)


def downgrade() -> None:
    raise RuntimeError("downgrade refused: migrations are additive only (services.md §4.1); restore a backup")
