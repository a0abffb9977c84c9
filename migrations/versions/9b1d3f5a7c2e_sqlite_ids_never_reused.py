"""SQLite: ids are never reused (AUTOINCREMENT), and what foreign keys would have deleted goes

Revision ID: 9b1d3f5a7c2e
Revises: d9f1b3c5e7a2
Create Date: 2026-12-02 10:00:00

Nothing changes on PostgreSQL, whose sequences never go back and whose foreign keys always held.

On SQLite (the embedded default) the app did not turn foreign keys on, so deleting an
organization left its memberships, invitations and API keys behind, and SQLite gave the next
row the id of the newest deleted one: a new organization could inherit a deleted one's members
and keys. Now the app turns them on for every connection; this migration:

- does what the foreign keys would have done: rows referring to a row that no longer exists are
  deleted (ON DELETE CASCADE) or let go (SET NULL);
- removes the memberships, invitations and keys older than their organization: they belonged to
  a deleted one whose id it took;
- rebuilds every table with an integer id as AUTOINCREMENT, and starts the organizations' ids
  past every id that the audit log, usage and jobs kept of a deleted one.
"""
import sqlalchemy as sa
from alembic import op

revision = '9b1d3f5a7c2e'
down_revision = 'd9f1b3c5e7a2'
branch_labels = None
depends_on = None

TABLES = (
    'users', 'organizations', 'memberships', 'invitations', 'audit_events', 'api_keys', 'subscriptions',
    'usage_records', 'mfa_recovery_codes',
)
# Rows that name an organization without a foreign key: kept for accounting after it is deleted.
ORG_IDS_KEPT = (('audit_events', 'org_id'), ('usage_records', 'org_id'), ('ai_jobs', 'org_id'))
# Rows made after their organization; one older than it was made for a deleted one of that id.
ORG_ROWS_AND_THEIR_TIME = (('memberships', 'joined_at'), ('invitations', 'created_at'), ('api_keys', 'created_at'))


def upgrade():
    connection = op.get_bind()
    if connection.dialect.name != 'sqlite':
        return
    _apply_foreign_key_actions(connection)
    for table, created in ORG_ROWS_AND_THEIR_TIME:
        connection.exec_driver_sql(
            f'DELETE FROM {table} WHERE {created} < '
            f'(SELECT created_at FROM organizations WHERE organizations.id = {table}.org_id)'
        )
    _apply_foreign_key_actions(connection)  # what referred to those (none today: kept for later tables)
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': True}):
            pass
    named = ' UNION ALL '.join(f'SELECT MAX({column}) AS id FROM {table}' for table, column in (('organizations', 'id'), *ORG_IDS_KEPT))
    _start_ids_after(connection, 'organizations', connection.exec_driver_sql(f'SELECT MAX(id) FROM ({named})').scalar())


def _apply_foreign_key_actions(connection):
    """Delete (CASCADE) or let go (SET NULL) each row whose foreign key names a missing row,
    until none is left (a deleted row may have been referred to in turn)."""
    while broken := connection.exec_driver_sql('PRAGMA foreign_key_check').all():
        for table, rowid, _, key_id in broken:
            key = [row for row in connection.exec_driver_sql(f'PRAGMA foreign_key_list({table})').all() if row[0] == key_id]
            action, columns = key[0][6], [row[3] for row in key]
            if action == 'CASCADE':
                connection.exec_driver_sql(f'DELETE FROM {table} WHERE rowid = ?', (rowid,))
            elif action == 'SET NULL':
                assignments = ', '.join(f'{column} = NULL' for column in columns)
                connection.exec_driver_sql(f'UPDATE {table} SET {assignments} WHERE rowid = ?', (rowid,))
            else:
                raise RuntimeError(f'{table} rowid {rowid} refers to a missing row and its key says {action}')


def _start_ids_after(connection, table, highest):
    if highest is None:
        return
    updated = connection.exec_driver_sql(
        'UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?', (highest, table)
    ).rowcount
    if not updated:
        connection.exec_driver_sql('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)', (table, highest))


def downgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:  # rebuilt from their reflection, which has no AUTOINCREMENT
        with op.batch_alter_table(table, recreate='always'):
            pass
