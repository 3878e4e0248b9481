"""Paper engine state that survives restarts: exact cost basis, funding cursor, order status details.

Additive only (services.md §4.1): every new column is nullable; nothing is removed or altered. Rows written
before this revision read as: cost basis = size · entry_price, funding since open = 0, filled size and
average price unknown, not a liquidation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ttt.adapters.db.types import ExactDecimal

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("paper_accounts", sa.Column("funding_hour", sa.BigInteger(), nullable=True))
    op.add_column("paper_positions", sa.Column("cost_basis", ExactDecimal(), nullable=True))
    op.add_column("paper_positions", sa.Column("funding_since_open", ExactDecimal(), nullable=True))
    op.add_column("paper_orders", sa.Column("filled_size", ExactDecimal(), nullable=True))
    op.add_column("paper_orders", sa.Column("avg_price", ExactDecimal(), nullable=True))
    op.add_column("paper_orders", sa.Column("error_text", sa.Text(), nullable=True))
    op.add_column("paper_trades", sa.Column("cloid", sa.String(length=34), nullable=True))
    op.add_column("paper_trades", sa.Column("liquidation", sa.Boolean(), nullable=True))


def downgrade() -> None:
    raise RuntimeError("downgrade refused: migrations are additive only (services.md §4.1); restore a backup")
