"""usage_records.expires_at (until when a reservation counts), ai_jobs.usage_record_id (the
reservation a job takes when it is submitted)

Reservations used to count for 15 minutes after they were made; existing unsettled ones keep
exactly that.

Revision ID: d5e7f9a2b4c6
Revises: c4d2e6f8a1b3
Create Date: 2026-11-29 23:30:00

"""
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = 'd5e7f9a2b4c6'
down_revision = 'c4d2e6f8a1b3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('ai_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('usage_record_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_ai_jobs_usage_record_id_usage_records'), 'usage_records', ['usage_record_id'], ['id'],
            ondelete='SET NULL',
        )
    connection = op.get_bind()
    records = sa.table('usage_records', sa.column('id'), sa.column('status'), sa.column('created_at'),
                       sa.column('expires_at'))
    for record_id, created_at in connection.execute(
        sa.select(records.c.id, records.c.created_at).where(records.c.status == 'reserved')
    ).all():
        connection.execute(
            sa.update(records).where(records.c.id == record_id).values(expires_at=created_at + timedelta(minutes=15))
        )


def downgrade():
    with op.batch_alter_table('ai_jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ai_jobs_usage_record_id_usage_records'), type_='foreignkey')
        batch_op.drop_column('usage_record_id')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
