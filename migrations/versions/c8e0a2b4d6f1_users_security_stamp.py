"""users.security_stamp: the account state every mailed link is bound to

Revision ID: c8e0a2b4d6f1
Revises: b3d5f7a9c1e2
Create Date: 2026-12-07 10:00:00

Expand only: a nullable column, which the previous release ignores (a null stamp is a stamp
like any other until the account's first security change gives it a random one).
"""
import sqlalchemy as sa
from alembic import op

revision = 'c8e0a2b4d6f1'
down_revision = 'b3d5f7a9c1e2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('security_stamp', sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('security_stamp')
