"""users.stripe_customers_deleted: a new Stripe idempotency key after each deleted customer

Revision ID: e6f8a0b3c5d7
Revises: d5e7f9a2b4c6
Create Date: 2026-11-30 00:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'e6f8a0b3c5d7'
down_revision = 'd5e7f9a2b4c6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_customers_deleted', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('stripe_customers_deleted')
