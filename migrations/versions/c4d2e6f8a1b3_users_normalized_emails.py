"""users: store every email in its normalised form (NFC local part, one domain form)

Before, `josé` typed composed and decomposed, `bücher.example` and `xn--bcher-kva.example`
counted as different addresses. Rows whose normalised form is free are rewritten; two rows that
normalise to the same address are both left as they are (and reported): merging accounts is a
person's decision, not a migration's.

Revision ID: c4d2e6f8a1b3
Revises: b3f1c2d4e5a6
Create Date: 2026-11-29 23:00:00

"""
import logging

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision = 'c4d2e6f8a1b3'
down_revision = 'b3f1c2d4e5a6'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def _normalized(email):
    try:
        return validate_email(email.strip(), check_deliverability=False, test_environment=True).normalized.lower()
    except EmailNotValidError:
        return email


def upgrade():
    connection = op.get_bind()
    users = sa.table('users', sa.column('id'), sa.column('email'))
    rows = connection.execute(sa.select(users.c.id, users.c.email)).all()
    wanted = {}
    for user_id, email in rows:
        wanted.setdefault(_normalized(email), []).append((user_id, email))
    for normalized, holders in wanted.items():
        if len(holders) > 1:
            log.warning("users %s share the address %r once normalised; left unchanged",
                        [user_id for user_id, _ in holders], normalized)
            continue
        user_id, email = holders[0]
        if email != normalized:
            connection.execute(sa.update(users).where(users.c.id == user_id).values(email=normalized))


def downgrade():
    pass  # the normalised form is still a valid spelling of each address
