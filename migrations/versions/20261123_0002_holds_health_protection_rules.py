"""Holds, preview health, configuration problems, protection rule requests, command counts, installation repositories.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('config_problems', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('health_status', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('health_elapsed_ms', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('health_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('health_checked_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('promotions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reference', sa.String(length=200), nullable=True))

    op.create_table('holds',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('proposal_id', Id, nullable=False),
    sa.Column('login', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('held_at', sa.DateTime(), nullable=False),
    sa.Column('released_at', sa.DateTime(), nullable=True),
    sa.Column('released_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_holds_proposal_id_proposals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_holds_proposal_id'), ['proposal_id'], unique=False)

    op.create_table('protection_rule_requests',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('installation_id', sa.BigInteger(), nullable=True),
    sa.Column('repo_full_name', sa.String(length=200), nullable=False),
    sa.Column('head_sha', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('environment', sa.String(length=255), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('answer', sa.String(length=20), nullable=True),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_protection_rule_requests')),
    sa.UniqueConstraint('repo_full_name', 'run_id', 'environment', name=op.f('uq_protection_rule_requests_repo_full_name'))
    )
    with op.batch_alter_table('protection_rule_requests', schema=None) as batch_op:
        batch_op.create_index('ix_protection_rule_requests_repo_sha', ['repo_full_name', 'head_sha'], unique=False)

    op.create_table('command_uses',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('repo_full_name', sa.String(length=200), nullable=False),
    sa.Column('login', sa.String(length=100), nullable=False),
    sa.Column('commands', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_command_uses'))
    )
    with op.batch_alter_table('command_uses', schema=None) as batch_op:
        batch_op.create_index('ix_command_uses_repo_login_at', ['repo_full_name', 'login', 'at'], unique=False)

    op.create_table('installation_repositories',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('installation_id', sa.BigInteger(), nullable=False),
    sa.Column('repo_full_name', sa.String(length=200), nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.Column('removed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_installation_repositories')),
    sa.UniqueConstraint('installation_id', 'repo_full_name', name=op.f('uq_installation_repositories_installation_id'))
    )


def downgrade() -> None:
    """Drops what the older schema cannot hold: holds (a held proposal is no longer held),
    protection rule requests and their answers, command counts, installation repositories,
    the preview health and configuration problems of proposals, promotions' references."""
    op.drop_table('installation_repositories')
    with op.batch_alter_table('command_uses', schema=None) as batch_op:
        batch_op.drop_index('ix_command_uses_repo_login_at')

    op.drop_table('command_uses')
    with op.batch_alter_table('protection_rule_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_protection_rule_requests_repo_sha')

    op.drop_table('protection_rule_requests')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_holds_proposal_id'))

    op.drop_table('holds')
    with op.batch_alter_table('promotions', schema=None) as batch_op:
        batch_op.drop_column('reference')

    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.drop_column('health_checked_at')
        batch_op.drop_column('health_error')
        batch_op.drop_column('health_elapsed_ms')
        batch_op.drop_column('health_status')
        batch_op.drop_column('config_problems')
