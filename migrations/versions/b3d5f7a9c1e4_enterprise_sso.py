"""enterprise SSO: organizations' domains, connections and SSO identities; the organization an
SSO login came through on its flow, code, pending login and session

Revision ID: b3d5f7a9c1e4
Revises: e2b4d6f8a0c3
Create Date: 2026-12-07 13:30:00

Expand only: three new tables and a nullable ``sso_org_id`` on four, which the previous release
ignores (its sessions have none: an SSO session of the previous release satisfied every
organization's ``require_mfa``; after the upgrade only the one it came through).
"""
import sqlalchemy as sa
from alembic import op

revision = 'b3d5f7a9c1e4'
down_revision = 'e2b4d6f8a0c3'
branch_labels = None
depends_on = None

# (table, what its row loses when the organization goes)
SSO_ORG_COLUMNS = (
    ('auth_sessions', 'SET NULL'),
    ('login_challenges', 'CASCADE'),
    ('oauth_states', 'CASCADE'),
    ('oauth_codes', 'CASCADE'),
)


def upgrade():
    op.create_table(
        'org_domains',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('domain', sa.String(length=253), nullable=False),
        sa.Column('challenge', sa.String(length=64), nullable=False),
        sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_org_domains_org_id_organizations'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_org_domains')),
        sa.UniqueConstraint('org_id', 'domain', name='uq_org_domains_org_id_domain'),
        sqlite_autoincrement=True,  # ids never reused on SQLite (saas/core/columns.py)
    )
    with op.batch_alter_table('org_domains', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_org_domains_org_id'), ['org_id'], unique=False)
        batch_op.create_index(
            'uq_org_domains_verified_domain', ['domain'], unique=True,
            postgresql_where=sa.text('verified_at IS NOT NULL'), sqlite_where=sa.text('verified_at IS NOT NULL'),
        )
    op.create_table(
        'sso_connections',
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('issuer', sa.String(length=512), nullable=False),
        sa.Column('client_id', sa.String(length=255), nullable=False),
        sa.Column('client_secret_encrypted', sa.Text(), nullable=False),
        sa.Column('enforce', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('default_role', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id'],
                                name=op.f('fk_sso_connections_org_id_organizations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('org_id', name=op.f('pk_sso_connections')),
    )
    op.create_table(
        'sso_identities',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('issuer', sa.String(length=512), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id'],
                                name=op.f('fk_sso_identities_org_id_organizations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sso_identities_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_identities')),
        sa.UniqueConstraint('org_id', 'issuer', 'subject', name='uq_sso_identities_org_id_issuer_subject'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('sso_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_identities_user_id'), ['user_id'], unique=False)
    for table, ondelete in SSO_ORG_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('sso_org_id', sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                batch_op.f(f'fk_{table}_sso_org_id_organizations'), 'organizations', ['sso_org_id'], ['id'],
                ondelete=ondelete,
            )


def downgrade():
    for table, _ in reversed(SSO_ORG_COLUMNS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_sso_org_id_organizations'), type_='foreignkey')
            batch_op.drop_column('sso_org_id')
    op.drop_table('sso_identities')
    op.drop_table('sso_connections')
    op.drop_table('org_domains')
