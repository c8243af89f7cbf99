"""Alembic's environment for the service's database (run by ``store.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from rclaude_infra.service.models import Base

connection = context.config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as opened:
        context.configure(connection=opened, target_metadata=Base.metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
