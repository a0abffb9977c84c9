"""users.email_verified and the mail outbox (mail_messages)

Revision ID: f7a9b1c3d5e8
Revises: e6f8a0b3c5d7
Create Date: 2026-11-29 23:30:00

Existing accounts start unverified: nothing proved their addresses. With REQUIRE_VERIFIED_EMAIL
off (the default) that changes nothing for them; before turning it on, let them verify.
"""
import sqlalchemy as sa
from alembic import op

revision = 'f7a9b1c3d5e8'
down_revision = 'e6f8a0b3c5d7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        'mail_messages',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('template', sa.String(length=64), nullable=False),
        sa.Column('to_address', sa.String(length=320), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('context', sa.JSON(), nullable=False),
        sa.Column('link', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('last_error', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('mail_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_messages_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_messages_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('mail_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_messages_user_id'))
        batch_op.drop_index(batch_op.f('ix_mail_messages_created_at'))
    op.drop_table('mail_messages')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('email_verified')
