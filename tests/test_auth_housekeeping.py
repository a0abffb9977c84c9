"""`flask auth prune-sessions` deletes long-ended sessions and nothing else."""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from saas.auth.models import AuthSession
from saas.extensions import db
from tests.helpers import login


def _age_session(session_id, **columns):
    db.session.execute(sa.update(AuthSession).where(AuthSession.id == session_id).values(**columns))
    db.session.commit()


def _session_ids():
    return set(db.session.scalars(sa.select(AuthSession.id)))


def test_prune_deletes_long_expired_and_long_revoked_sessions_only(client, user):
    for _ in range(4):
        login(client)
    ids = sorted(_session_ids())
    assert len(ids) == 4
    long_ago = datetime.now(timezone.utc) - timedelta(days=40)
    _age_session(ids[0], expires_at=long_ago)
    _age_session(ids[1], revoked_at=long_ago, revoked_reason="logout")
    _age_session(ids[2], revoked_at=datetime.now(timezone.utc), revoked_reason="logout")

    result = client.application.test_cli_runner().invoke(args=["auth", "prune-sessions", "--keep-days", "30"])

    assert result.exit_code == 0, result.output
    assert "deleted 2 sessions" in result.output
    assert _session_ids() == {ids[2], ids[3]}
