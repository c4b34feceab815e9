"""When the sweeper looks at an open proposal again: its minimum voting time ending, or its period closing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revisit_at', sa.DateTime(), nullable=True))
        batch_op.drop_index('ix_proposals_state_closes_at')
        batch_op.create_index('ix_proposals_state_revisit_at', ['state', 'revisit_at'], unique=False)
    # Open proposals are looked at again at once; the first look sets their next time.
    op.execute(
        "UPDATE proposals SET revisit_at = opened_at WHERE state IN ('voting', 'passed') AND decided_at IS NULL"
    )


def downgrade() -> None:
    """Drops when each open proposal is looked at again; upgrading sets it anew."""
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.drop_index('ix_proposals_state_revisit_at')
        batch_op.create_index('ix_proposals_state_closes_at', ['state', 'closes_at'], unique=False)
        batch_op.drop_column('revisit_at')
