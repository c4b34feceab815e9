"""Rate-limit waits of deliveries and effects, counted apart from their attempts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rate_limit_waits', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rate_limit_waits', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    """Drops the rate-limit wait counts of deliveries and effects; their attempts stay."""
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.drop_column('rate_limit_waits')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('rate_limit_waits')
