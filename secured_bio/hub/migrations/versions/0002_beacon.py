"""Beacon: each site's X25519 key for the masked sums of Beacon answers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('beacon_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Revert."""
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('beacon_key')
