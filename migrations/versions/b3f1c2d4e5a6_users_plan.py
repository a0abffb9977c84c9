"""users: plan and plan_past_due_since, the current subscription's plan kept on the row

Reading the plan (GET /users/me, quotas, @plan_required) then costs no query; billing rewrites
both whenever a subscription changes. Existing rows are filled from their subscriptions.

Revision ID: b3f1c2d4e5a6
Revises: 7d3e5a9c1b24
Create Date: 2026-11-29 22:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'b3f1c2d4e5a6'
down_revision = '7d3e5a9c1b24'
branch_labels = None
depends_on = None

ENDED = ("canceled", "incomplete_expired")


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan', sa.String(length=64), server_default='free', nullable=False))
        batch_op.add_column(sa.Column('plan_past_due_since', sa.DateTime(timezone=True), nullable=True))
    _fill_plans()


def _fill_plans():
    """Per user, the newest active or trialing subscription sets the plan, else the newest
    past_due one (with when it went past_due), as billing's ``refresh_plan`` does."""
    connection = op.get_bind()
    subscriptions = sa.table(
        'subscriptions', sa.column('user_id'), sa.column('status'), sa.column('plan'),
        sa.column('past_due_since'), sa.column('created_at'),
    )
    users = sa.table('users', sa.column('id'), sa.column('plan'), sa.column('plan_past_due_since'))
    rows = connection.execute(
        sa.select(subscriptions).where(subscriptions.c.status.not_in(ENDED), subscriptions.c.plan.is_not(None))
        .order_by(subscriptions.c.created_at)
    ).all()
    granted = {}
    for row in rows:  # oldest first: a later granting subscription replaces an earlier one
        if row.status in ("active", "trialing"):
            granted[row.user_id] = (row.plan, None, True)
        elif row.status == "past_due" and row.past_due_since is not None:
            if not granted.get(row.user_id, (None, None, False))[2]:
                granted[row.user_id] = (row.plan, row.past_due_since, False)
    for user_id, (plan, past_due_since, _) in granted.items():
        connection.execute(
            sa.update(users).where(users.c.id == user_id).values(plan=plan, plan_past_due_since=past_due_since)
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('plan_past_due_since')
        batch_op.drop_column('plan')
