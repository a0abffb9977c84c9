"""`flask auth prune-sessions` deletes long-ended sessions and nothing else; `flask auth unlock`."""
from datetime import datetime, timedelta, timezone

import subprocess
import sys

import pytest
import sqlalchemy as sa

from saas.auth.models import AuthSession
from saas.extensions import db
from tests.conftest import ROOT, child_env, make_app
from tests.helpers import PASSWORD, login, register

LOGIN = "/api/v1/auth/login"


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


@pytest.mark.parametrize("days", ["-8", "0"])
def test_prune_refuses_a_keep_days_that_would_end_live_sessions(client, user, days):
    login(client)
    result = client.application.test_cli_runner().invoke(args=["auth", "prune-sessions", "--keep-days", days])
    assert result.exit_code != 0 and "keep-days" in result.output
    assert len(_session_ids()) == 1


def test_support_can_unlock_a_throttled_account(limited_client):
    client, runner = limited_client
    register(client)
    wrong = {"email": "user@example.com", "password": "a wrong guess"}
    assert [client.post(LOGIN, json=wrong).status_code for _ in range(4)] == [401, 401, 401, 429]
    result = runner.invoke(args=["auth", "unlock", "User@Example.com"])
    assert result.exit_code == 0, result.output
    assert client.post(LOGIN, json={"email": "user@example.com", "password": PASSWORD}).status_code == 200


@pytest.fixture
def limited_client(database, redis_client):
    app = make_app(RATELIMIT_ENABLED="true", RATELIMIT_LOGIN_ACCOUNT="3 per minute")
    with app.app_context():
        yield app.test_client(), app.test_cli_runner()
        db.session.remove()
        db.engine.dispose()


def test_the_flask_limiter_commands_work(database):
    """flask-limiter adds `flask limiter ...` to `flask --help`; its [cli] extra must be installed."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "limiter", "limits"], cwd=ROOT, env=child_env(RATELIMIT_ENABLED="true"),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "auth.login" in result.stdout
