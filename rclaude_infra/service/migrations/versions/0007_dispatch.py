"""Tasks wait for a dispatcher: when one started each, its lease while it does, and why a
task ended before it started. Tasks of earlier revisions were started by their request.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rclaude_infra.service.models import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as table:
        table.add_column(sa.Column("reason", sa.Text))
        table.add_column(sa.Column("dispatched_at", UtcDateTime))
        table.add_column(sa.Column("lease_owner", sa.String(64)))
        table.add_column(sa.Column("lease_until", UtcDateTime))
        table.add_column(sa.Column("dispatch_attempts", sa.Integer, nullable=False,
                                   server_default="0"))
    op.execute("UPDATE tasks SET dispatched_at = created_at, dispatch_attempts = 1")


def downgrade() -> None:
    with op.batch_alter_table("tasks") as table:
        for column in ("dispatch_attempts", "lease_until", "lease_owner", "dispatched_at",
                       "reason"):
            table.drop_column(column)
