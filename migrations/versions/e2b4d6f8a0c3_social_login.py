"""social login: user identities, the browser flow's states and one-time codes

Revision ID: e2b4d6f8a0c3
Revises: 362643138d6e
Create Date: 2026-12-14 10:00:00

Expand only: three new tables, which the previous release ignores. An account made by a social
login has no password without any change to ``users``: its ``hashed_password`` (still NOT NULL)
is an unusable marker that no bcrypt check matches, in this release or the previous one
(``saas/users/passwords.py``).
"""
import sqlalchemy as sa
from alembic import op

revision = 'e2b4d6f8a0c3'
down_revision = '362643138d6e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_identities',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=64), nullable=False),
        sa.Column('issuer', sa.String(length=512), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_identities_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_identities')),
        sa.UniqueConstraint('provider', 'issuer', 'subject', name='uq_user_identities_provider_issuer_subject'),
        sqlite_autoincrement=True,  # ids never reused on SQLite (saas/core/columns.py)
    )
    with op.batch_alter_table('user_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_identities_user_id'), ['user_id'], unique=False)
    op.create_table(
        'oauth_states',
        sa.Column('state_hash', sa.String(length=64), nullable=False),
        sa.Column('browser_hash', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('provider', sa.String(length=64), nullable=False),
        sa.Column('nonce_hash', sa.String(length=64), nullable=True),
        sa.Column('code_verifier_encrypted', sa.Text(), nullable=False),
        sa.Column('redirect_uri', sa.Text(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('stamp', sa.String(length=24), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth_states_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('state_hash', name=op.f('pk_oauth_states')),
    )
    with op.batch_alter_table('oauth_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_states_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_states_expires_at'), ['expires_at'], unique=False)
    op.create_table(
        'oauth_codes',
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('stamp', sa.String(length=24), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=True),
        sa.Column('provider', sa.String(length=64), nullable=True),
        sa.Column('issuer', sa.String(length=512), nullable=True),
        sa.Column('subject', sa.String(length=255), nullable=True),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth_codes_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_oauth_codes')),
    )
    with op.batch_alter_table('oauth_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_codes_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_codes_expires_at'), ['expires_at'], unique=False)


def downgrade():
    op.drop_table('oauth_codes')
    op.drop_table('oauth_states')
    op.drop_table('user_identities')
