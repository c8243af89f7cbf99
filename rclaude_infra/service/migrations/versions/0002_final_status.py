"""A task's end status, once seen: the tasks not ended are found without a look at each.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as table:
        table.add_column(sa.Column("final_status", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as table:
        table.drop_column("final_status")
