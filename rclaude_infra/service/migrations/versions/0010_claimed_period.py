"""The billing period a task's execution was claimed from.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rclaude_infra.service.models import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("period_start", UtcDateTime))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("period_start")
