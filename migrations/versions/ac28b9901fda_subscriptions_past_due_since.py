"""subscriptions: past_due_since (start of the past_due grace period) replaces stripe_event_created

Subscriptions are now re-fetched from Stripe whenever an event about them is applied, so the
created-time of the last applied event is no longer needed to order events.

Revision ID: ac28b9901fda
Revises: 8743326760a3
Create Date: 2026-11-26 01:35:15.635784

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ac28b9901fda'
down_revision = '8743326760a3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('past_due_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_column('stripe_event_created')


def downgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_event_created', sa.BigInteger(), nullable=True))
        batch_op.drop_column('past_due_since')
