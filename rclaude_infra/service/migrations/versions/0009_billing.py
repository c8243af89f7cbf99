"""Plans, quotas and billing: subscriptions, usage periods, usage records, Stripe events.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rclaude_infra.service.models import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("execution_no", sa.Integer))
    op.create_table(
        "subscriptions",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("overrides", sa.Text),
        sa.Column("stripe_customer", sa.String(255), unique=True),
        sa.Column("stripe_subscription", sa.String(255)),
        sa.Column("status", sa.String(32)),
        sa.Column("period_start", UtcDateTime),
        sa.Column("period_end", UtcDateTime),
        sa.Column("grace_until", UtcDateTime),
        sa.Column("state_at", sa.BigInteger, nullable=False),
        sa.Column("invoice_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "usage_periods",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("period_start", UtcDateTime, primary_key=True),
        sa.Column("executions", sa.Integer, nullable=False),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(40), sa.ForeignKey("tasks.id", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("period_start", UtcDateTime, nullable=False, index=True),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.Column("executions", sa.Integer, nullable=False),
        sa.Column("overage", sa.Integer, nullable=False),
        sa.Column("compute_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("model_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("service_key", sa.Boolean, nullable=False),
        sa.Column("reported_at", UtcDateTime),
        sa.Column("billable", sa.Boolean, nullable=False),
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("stripe_events", "usage_records", "usage_periods", "subscriptions"):
        op.drop_table(table)
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("execution_no")
