"""organizations, memberships, invitations, audit_events; billing, usage and keys move to organizations

Revision ID: a1c3e5f7b9d2
Revises: f7a9b1c3d5e8
Create Date: 2026-11-30 01:00:00

Every existing user gets a personal organization (owner: the user) carrying what billing kept on
the users row (Stripe customer, plan), and their subscriptions, usage records, AI jobs and API
keys are attached to it; nothing is deleted.

Expand only (see the README, "Zero-downtime migrations"): the users billing columns and
subscriptions.user_id stay for the previous release, which reads them during a rollout (this
release keeps a personal organization's values mirrored there); api_keys.org_id and
subscriptions.org_id stay nullable, because the previous release inserts rows without them. A
later release drops the old columns and adds the NOT NULLs.
"""
import sqlalchemy as sa
from alembic import op

revision = 'a1c3e5f7b9d2'
down_revision = 'f7a9b1c3d5e8'
branch_labels = None
depends_on = None

BACKFILLED = ('subscriptions', 'usage_records', 'ai_jobs', 'api_keys')


def upgrade():
    op.create_table(
        'organizations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('slug', sa.String(length=80), nullable=False),
        sa.Column('personal', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('personal_owner_id', sa.Integer(), nullable=True),
        sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
        sa.Column('stripe_customers_deleted', sa.Integer(), server_default='0', nullable=False),
        sa.Column('plan', sa.String(length=64), server_default='free', nullable=False),
        sa.Column('plan_past_due_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['personal_owner_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('personal_owner_id'),
        sa.UniqueConstraint('slug'),
    )
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organizations_stripe_customer_id'), ['stripe_customer_id'], unique=True)

    op.create_table(
        'memberships',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('joined_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('org_id', 'user_id', name='uq_memberships_org_id_user_id'),
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memberships_user_id'), ['user_id'], unique=False)

    op.create_table(
        'invitations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=True),
        sa.Column('invited_by_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('accepted_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitations_org_id'), ['org_id'], unique=False)
        batch_op.create_index(
            'uq_invitations_pending', ['org_id', 'email'], unique=True,
            postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=True),
        sa.Column('actor_user_id', sa.Integer(), nullable=True),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=True),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('ip_address', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_actor_user_id'), ['actor_user_id'], unique=False)
        batch_op.create_index('ix_audit_events_org_id_created_at', ['org_id', 'created_at'], unique=False)

    # Each table gains the organization it belongs to.
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('org_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('quantity', sa.Integer(), nullable=True))
        batch_op.alter_column('user_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f('ix_subscriptions_org_id'), ['org_id'], unique=False)
        batch_op.create_foreign_key('fk_subscriptions_org_id', 'organizations', ['org_id'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('org_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_usage_records_org_id_created_at', ['org_id', 'created_at'], unique=False)
    with op.batch_alter_table('ai_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('org_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ai_jobs_org_id'), ['org_id'], unique=False)
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('org_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_keys_org_id'), ['org_id'], unique=False)
        batch_op.create_foreign_key('fk_api_keys_org_id', 'organizations', ['org_id'], ['id'], ondelete='CASCADE')

    _move_billing_to_personal_organizations()


def _move_billing_to_personal_organizations():
    users = sa.table(
        'users', sa.column('id', sa.Integer), sa.column('email', sa.String), sa.column('full_name', sa.String),
        sa.column('stripe_customer_id', sa.String), sa.column('stripe_customers_deleted', sa.Integer),
        sa.column('plan', sa.String), sa.column('plan_past_due_since', sa.DateTime(timezone=True)),
        sa.column('created_at', sa.DateTime(timezone=True)),
    )
    organizations = sa.table(
        'organizations', sa.column('id', sa.Integer), sa.column('name', sa.String), sa.column('slug', sa.String),
        sa.column('personal', sa.Boolean), sa.column('personal_owner_id', sa.Integer),
        sa.column('stripe_customer_id', sa.String), sa.column('stripe_customers_deleted', sa.Integer),
        sa.column('plan', sa.String), sa.column('plan_past_due_since', sa.DateTime(timezone=True)),
        sa.column('created_at', sa.DateTime(timezone=True)),
    )
    memberships = sa.table(
        'memberships', sa.column('org_id', sa.Integer), sa.column('user_id', sa.Integer),
        sa.column('role', sa.String), sa.column('joined_at', sa.DateTime(timezone=True)),
    )
    op.execute(organizations.insert().from_select(
        ['name', 'slug', 'personal', 'personal_owner_id', 'stripe_customer_id', 'stripe_customers_deleted',
         'plan', 'plan_past_due_since', 'created_at'],
        sa.select(
            sa.func.coalesce(users.c.full_name, users.c.email),
            sa.literal('personal-') + sa.cast(users.c.id, sa.String),
            sa.true(), users.c.id, users.c.stripe_customer_id, users.c.stripe_customers_deleted,
            users.c.plan, users.c.plan_past_due_since, users.c.created_at,
        ),
    ))
    op.execute(memberships.insert().from_select(
        ['org_id', 'user_id', 'role', 'joined_at'],
        sa.select(organizations.c.id, organizations.c.personal_owner_id, sa.literal('owner'),
                  organizations.c.created_at)
        .where(organizations.c.personal_owner_id.is_not(None)),
    ))
    for name in BACKFILLED:
        table = sa.table(name, sa.column('org_id', sa.Integer), sa.column('user_id', sa.Integer))
        personal = (
            sa.select(organizations.c.id)
            .where(organizations.c.personal_owner_id == table.c.user_id)
            .scalar_subquery()
        )
        op.execute(table.update().where(table.c.org_id.is_(None)).values(org_id=personal))


def downgrade():
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint('fk_api_keys_org_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_api_keys_org_id'))
        batch_op.drop_column('org_id')
    with op.batch_alter_table('ai_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ai_jobs_org_id'))
        batch_op.drop_column('org_id')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_org_id_created_at')
        batch_op.drop_column('org_id')
    # Subscriptions of team organizations have no user: they cannot go back.
    op.execute(sa.text('DELETE FROM subscriptions WHERE user_id IS NULL'))
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_subscriptions_org_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_subscriptions_org_id'))
        batch_op.alter_column('user_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('quantity')
        batch_op.drop_column('org_id')
    op.drop_table('audit_events')
    op.drop_table('invitations')
    op.drop_table('memberships')
    op.drop_table('organizations')
