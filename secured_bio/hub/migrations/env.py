"""Alembic environment: runs on the connection that ``secured_bio.hub.db.migrate`` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from secured_bio.hub.models import Base

target_metadata = Base.metadata
config = context.config

connection = config.attributes.get("connection")
if connection is None:  # `alembic -x url=...` from a shell
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///hub.db upgrade head")
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
