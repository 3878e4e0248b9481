"""A covering index for a shard's membership check (providence.md §18.3 step 3).

Every shard tick asks for the number of unended runs of the shard and for those flagged or newly started;
with (symbol, shard, end_time, exit_run, start_time) both are answered from the index, without reading the
rows and their large `run_state`. Additive only (services.md §4.1).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_runs_shard_members", "runs", ["symbol", "shard", "end_time", "exit_run", "start_time"]
    )


def downgrade() -> None:
    raise RuntimeError("downgrade refused: migrations are additive only (services.md §4.1); restore a backup")
