"""`flask db upgrade` builds the whole schema, and the models and migrations agree."""
import sqlite3
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from config import MIGRATIONS_DIR, normalize_database_url
from saas.system.migrations import known_revisions

from saas.extensions import db
from tests.conftest import DATABASE_URL, ROOT, child_env, make_app
from tests.helpers import bearer, login


def flask_db(*args, database_url, timeout=None):
    return subprocess.run(
        [sys.executable, "-m", "flask", "db", *args],
        cwd=ROOT,
        env=child_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


BEFORE_USERS_DELETED_AT = "a1c3e5f7b9d2"


@pytest.fixture
def empty_postgres_database(database):
    name = f"saas_migrations_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(normalize_database_url(DATABASE_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_users_table_is_the_seeds(empty_postgres_database):
    assert flask_db("upgrade", database_url=empty_postgres_database).returncode == 0
    engine = sa.create_engine(normalize_database_url(empty_postgres_database))
    inspector = sa.inspect(engine)
    columns = {column["name"]: column for column in inspector.get_columns("users")}
    assert set(columns) >= {
        "id", "email", "hashed_password", "full_name", "is_active", "is_superuser",
        "stripe_customer_id", "created_at", "updated_at",
    }
    assert columns["email"]["nullable"] is False
    assert columns["hashed_password"]["nullable"] is False
    assert columns["created_at"]["type"].timezone is True
    assert columns["updated_at"]["type"].timezone is True
    assert "now()" in columns["created_at"]["default"]
    unique_indexes = {index["column_names"][0] for index in inspector.get_indexes("users") if index["unique"]}
    assert unique_indexes >= {"email", "stripe_customer_id"}
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_postgres_database):
    assert flask_db("upgrade", database_url=empty_postgres_database).returncode == 0
    downgrade = flask_db("downgrade", "base", database_url=empty_postgres_database)
    assert downgrade.returncode == 0, downgrade.stderr
    assert flask_db("upgrade", database_url=empty_postgres_database).returncode == 0


def test_upgrade_on_the_embedded_sqlite_default_matches_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'saas.db'}"
    upgrade = flask_db("upgrade", database_url=url)
    assert upgrade.returncode == 0, upgrade.stderr
    check = flask_db("check", database_url=url)
    assert check.returncode == 0, check.stdout + check.stderr


def test_no_table_on_the_embedded_sqlite_default_gives_a_deleted_rows_id_to_the_next(tmp_path):
    """SQLite reuses the newest deleted row's id unless the table says AUTOINCREMENT, which a
    table rebuilt by a later migration loses unless it passes IDS_NEVER_REUSED again."""
    url = f"sqlite:///{tmp_path / 'saas.db'}"
    assert flask_db("upgrade", database_url=url).returncode == 0
    with_integer_ids = {  # generated ones: an id of its own, not another row's
        table.name for table in db.metadata.sorted_tables
        if [(type(column.type), bool(column.foreign_keys)) for column in table.primary_key.columns] == [(sa.Integer, False)]
    }
    asking = {table.name for table in db.metadata.sorted_tables if table.dialect_options["sqlite"]["autoincrement"]}
    assert asking == with_integer_ids
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        created = dict(connection.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
    engine.dispose()
    assert {name for name in with_integer_ids if "AUTOINCREMENT" not in created[name]} == set()


BEFORE_IDS_NEVER_REUSED = "d9f1b3c5e7a2"


def test_upgrading_an_embedded_database_drops_what_deleted_organizations_left_and_keeps_the_rest(tmp_path):
    """A database the previous release wrote on SQLite, with foreign keys ignored: Acme (3) was
    deleted, its members, key and invitation stayed, and the newcomer's personal organization
    took its id; Gone (4) left a member, and its audit trail names it. After the upgrade the
    leftovers are gone, everything else is kept, and no new organization takes an old id."""
    from saas.users.passwords import hash_password

    path = tmp_path / "saas.db"
    url = f"sqlite:///{path}"
    assert flask_db("upgrade", BEFORE_IDS_NEVER_REUSED, database_url=url).returncode == 0
    app = make_app(DATABASE_URL=url, REDIS_URL="")
    with app.app_context():
        password = hash_password("correct horse battery staple")
    then, later = "2026-01-01 10:00:00.000000", "2026-02-01 10:00:00.000000"
    with sqlite3.connect(path) as connection:  # foreign keys off, as they were
        run = connection.execute
        for user_id, email in ((1, "owner@example.com"), (2, "admin@example.com"), (3, "newcomer@example.com")):
            run("INSERT INTO users (id, email, hashed_password, created_at) VALUES (?, ?, ?, ?)", (user_id, email, password, then))
        for org_id, owner, created in ((1, 1, then), (2, 2, then), (3, 3, later)):
            run("INSERT INTO organizations (id, name, slug, personal, personal_owner_id, created_at) "
                "VALUES (?, ?, ?, 1, ?, ?)", (org_id, f"Person {owner}", f"personal-{owner}", owner, created))
        for org_id, user_id, role, joined in (
            (1, 1, "owner", then), (2, 2, "owner", then), (3, 3, "owner", later),  # their own
            (3, 1, "owner", then), (3, 2, "admin", then), (4, 2, "member", then),  # left by Acme and Gone
        ):
            run("INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)", (org_id, user_id, role, joined))
        run("INSERT INTO api_keys (user_id, org_id, name, prefix, key_hash, created_at) "
            "VALUES (1, 3, 'acme', 'sk_0123456789ab', 'hash', ?)", (then,))
        run("INSERT INTO api_keys (user_id, org_id, name, prefix, key_hash, created_at) "
            "VALUES (1, 1, 'mine', 'sk_ba9876543210', 'hash', ?)", (then,))
        run("INSERT INTO invitations (org_id, email, role, status, created_at, expires_at) "
            "VALUES (3, 'friend@example.com', 'member', 'pending', ?, ?)", (then, later))
        run("INSERT INTO subscriptions (stripe_subscription_id, org_id, stripe_customer_id, status, price_id, plan) "
            "VALUES ('sub_gone', 4, 'cus_gone', 'canceled', 'price_team', 'team')")
        for org_id, action in ((3, "org.deleted"), (4, "org.deleted"), (5, "org.deleted")):
            run("INSERT INTO audit_events (org_id, action, details, created_at) VALUES (?, ?, '{}', ?)", (org_id, action, then))
        run("INSERT INTO usage_records (user_id, org_id, model, status, reserved_tokens, input_tokens, output_tokens) "
            "VALUES (2, 4, 'fake-model', 'settled', 0, 10, 20)")

    upgraded = flask_db("upgrade", database_url=url)
    assert upgraded.returncode == 0, upgraded.stderr
    with sqlite3.connect(path) as connection:
        run = lambda sql: connection.execute(sql).fetchall()  # noqa: E731
        assert run("SELECT org_id, user_id, role FROM memberships ORDER BY org_id") == [
            (1, 1, "owner"), (2, 2, "owner"), (3, 3, "owner"),
        ]
        assert run("SELECT org_id, name FROM api_keys") == [(1, "mine")]
        assert run("SELECT * FROM invitations") == []
        assert run("SELECT stripe_subscription_id, org_id FROM subscriptions") == [("sub_gone", None)]
        assert run("SELECT org_id FROM audit_events ORDER BY id") == [(3,), (4,), (5,)]  # the trail stays
        assert run("SELECT org_id, input_tokens + output_tokens FROM usage_records") == [(4, 30)]
        assert run("SELECT COUNT(*) FROM users") == [(3,)]
        assert run("PRAGMA foreign_key_check") == []

    with app.app_context():
        client = app.test_client()
        token = login(client, "admin@example.com")["access_token"]
        assert [org["id"] for org in client.get("/api/v1/orgs", headers=bearer(token)).get_json()] == [2]
        assert client.get("/api/v1/orgs/3", headers=bearer(token)).status_code == 404
        created = client.post("/api/v1/orgs", json={"name": "Next"}, headers=bearer(token)).get_json()
        assert created["id"] == 6  # past every organization the audit log still names
        db.session.remove()
        db.engine.dispose()


def test_readiness_holds_while_a_newer_release_has_migrated_and_fails_when_behind(empty_postgres_database):
    """During a rolling update the database runs ahead of the old pods: they must stay ready."""
    assert flask_db("upgrade", database_url=empty_postgres_database).returncode == 0
    engine = sa.create_engine(normalize_database_url(empty_postgres_database))
    app = make_app(DATABASE_URL=empty_postgres_database)
    try:
        assert app.test_client().get("/health/ready").get_json()["migrations"] == "ok"
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
        ahead = app.test_client().get("/health/ready")
        assert (ahead.status_code, ahead.get_json()["migrations"]) == (200, "ahead")
        assert flask_db("stamp", "--purge", "8743326760a3", database_url=empty_postgres_database).returncode == 0
        behind = app.test_client().get("/health/ready")
        assert (behind.status_code, behind.get_json()["migrations"]) == (503, "pending")
    finally:
        with app.app_context():
            db.engine.dispose()
        engine.dispose()


def test_an_upgrade_that_cannot_get_its_lock_gives_up_instead_of_stalling_the_serving_release(empty_postgres_database):
    """`flask db upgrade` runs while the previous release serves. A schema change waiting for a
    table lock would queue every later query on that table behind it, for as long as the
    transaction it waits for lasts: instead it gives up (lock_timeout, migrations/env.py), with
    nothing applied, and the next run (the Kubernetes Job's retry) succeeds."""
    assert flask_db("upgrade", database_url=empty_postgres_database).returncode == 0
    # Back to a release before a migration that alters a table on PostgreSQL (users.deleted_at;
    # not every migration does: some change SQLite only).
    assert flask_db("downgrade", BEFORE_USERS_DELETED_AT, database_url=empty_postgres_database).returncode == 0
    engine = sa.create_engine(normalize_database_url(empty_postgres_database))

    def revision():
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()

    previous = revision()
    _, [head] = known_revisions()
    try:
        with engine.connect() as serving:
            # A request of the previous release, in the middle of its transaction, has read and
            # written every table (whichever the newest revision alters, or adds a foreign key to:
            # that waits for writers only).
            tables = serving.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )).scalars().all()
            for table in tables:
                serving.execute(sa.text(f'SELECT count(*) FROM "{table}"'))
                serving.execute(sa.text(f'LOCK TABLE "{table}" IN ROW EXCLUSIVE MODE'))  # what a write takes
            upgrade = flask_db("upgrade", database_url=empty_postgres_database, timeout=120)
            assert upgrade.returncode != 0
            assert "lock timeout" in upgrade.stderr
            assert revision() == previous  # nothing half-applied
            serving.rollback()
        again = flask_db("upgrade", database_url=empty_postgres_database, timeout=120)
        assert again.returncode == 0, again.stderr
        assert revision() == head
    finally:
        engine.dispose()


def _reading_every_table(connection):
    """A request of the previous release, in the middle of its transaction, has read every table
    (whichever the newest revision alters)."""
    tables = connection.execute(sa.text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
    )).scalars().all()
    for table in tables:
        connection.execute(sa.text(f'SELECT count(*) FROM "{table}"'))


SOCIAL_LOGIN_REVISION = "e2b4d6f8a0c3"


def test_the_social_login_revision_applies_while_the_previous_release_reads(empty_postgres_database):
    """Expand only: its tables are created without waiting for any lock the previous release's
    requests hold (their foreign keys to `users` take none that a reader conflicts with)."""
    previous = ScriptDirectory.from_config(alembic_config()).get_revision(SOCIAL_LOGIN_REVISION).down_revision
    assert flask_db("upgrade", previous, database_url=empty_postgres_database).returncode == 0
    engine = sa.create_engine(normalize_database_url(empty_postgres_database))
    try:
        with engine.connect() as serving:
            _reading_every_table(serving)
            upgrade = flask_db("upgrade", SOCIAL_LOGIN_REVISION, database_url=empty_postgres_database, timeout=120)
            assert upgrade.returncode == 0, upgrade.stderr
            serving.rollback()
    finally:
        engine.dispose()


def alembic_config():
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def test_the_readiness_check_reads_the_same_heads_as_alembic():
    """saas/system/migrations.py reads revision ids without Alembic; it must agree with it."""
    script = ScriptDirectory.from_config(alembic_config())
    revisions, heads = known_revisions()
    assert heads == set(script.get_heads())
    assert revisions == {revision.revision for revision in script.walk_revisions()}


def test_a_postgres_database_never_migrated_answers_503_naming_flask_db_upgrade(empty_postgres_database):
    app = make_app(DATABASE_URL=empty_postgres_database)
    try:
        client = app.test_client()
        response = client.post("/api/v1/auth/register", json={"email": "a@example.com", "password": "engines weave patterns"})
        assert response.status_code == 503
        assert "flask db upgrade" in response.get_json()["message"]
        health = client.get("/health")
        assert (health.status_code, health.get_json()["migrations"]) == (503, "pending")
    finally:
        with app.app_context():
            db.engine.dispose()


BEFORE_ORGANIZATIONS = "f7a9b1c3d5e8"  # the revision the organizations migration follows


def test_the_organizations_migration_gives_every_user_a_personal_organization_losing_nothing(empty_postgres_database):
    """Upgrade a database that has customers, subscriptions, usage, jobs and keys on users: each
    user's personal organization gets their Stripe customer and plan, and every row its
    organization; nothing is deleted; the app then serves those users from the organizations."""
    from saas.users.passwords import hash_password

    assert flask_db("upgrade", BEFORE_ORGANIZATIONS, database_url=empty_postgres_database).returncode == 0
    engine = sa.create_engine(normalize_database_url(empty_postgres_database))
    app = make_app(DATABASE_URL=empty_postgres_database)
    with app.app_context():
        password = hash_password("correct horse battery staple")
    with engine.begin() as connection:
        run = lambda sql, **values: connection.execute(sa.text(sql), values)  # noqa: E731
        run("INSERT INTO users (id, email, hashed_password, full_name, stripe_customer_id, plan, email_verified) "
            "VALUES (1, 'payer@example.com', :password, 'Payer', 'cus_payer', 'pro', true)", password=password)
        run("INSERT INTO users (id, email, hashed_password, stripe_customers_deleted, plan, plan_past_due_since) "
            "VALUES (2, 'late@example.com', :password, 2, 'team', now() - interval '1 day')", password=password)
        run("INSERT INTO users (id, email, hashed_password) VALUES (3, 'free@example.com', :password)", password=password)
        run("SELECT setval('users_id_seq', 3)")
        run("INSERT INTO subscriptions (stripe_subscription_id, user_id, stripe_customer_id, status, price_id, plan) "
            "VALUES ('sub_payer', 1, 'cus_payer', 'active', 'price_pro', 'pro'), "
            "('sub_old', 1, 'cus_payer', 'canceled', 'price_pro', 'pro'), "
            "('sub_late', 2, 'cus_late', 'past_due', 'price_team', 'team')")
        for user_id in (1, 1, 2, 3):
            run("INSERT INTO usage_records (user_id, model, status, reserved_tokens, input_tokens, output_tokens) "
                "VALUES (:user_id, 'fake-model', 'settled', 0, 10, 20)", user_id=user_id)
        run("INSERT INTO ai_jobs (id, user_id, status, model, max_tokens, messages) "
            "VALUES ('00000000-0000-0000-0000-000000000001', 1, 'succeeded', 'fake-model', 10, '[]')")
        run("INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES (2, 'ci', 'sk_live_x', 'hash')")

    upgraded = flask_db("upgrade", database_url=empty_postgres_database)
    assert upgraded.returncode == 0, upgraded.stderr
    with engine.connect() as connection:
        orgs = {
            row.personal_owner_id: row for row in connection.execute(sa.text(
                "SELECT o.*, m.user_id AS member, m.role FROM organizations o JOIN memberships m ON m.org_id = o.id"
            ))
        }
        assert set(orgs) == {1, 2, 3}
        assert all(org.personal and org.member == owner and org.role == "owner" for owner, org in orgs.items())
        assert (orgs[1].name, orgs[1].stripe_customer_id, orgs[1].plan) == ("Payer", "cus_payer", "pro")
        assert (orgs[2].stripe_customers_deleted, orgs[2].plan, orgs[2].plan_past_due_since is not None) == (2, "team", True)
        assert (orgs[3].stripe_customer_id, orgs[3].plan) == (None, "free")
        for table, count in (("subscriptions", 3), ("usage_records", 4), ("ai_jobs", 1), ("api_keys", 1)):
            rows = connection.execute(sa.text(f"SELECT user_id, org_id FROM {table}")).all()
            assert len(rows) == count, table
            assert all(org_id == orgs[user_id].id for user_id, org_id in rows), table
        # The previous release still reads its columns during the rollout: they are all there.
        assert connection.execute(sa.text("SELECT stripe_customer_id, plan FROM users WHERE id = 1")).one() == ("cus_payer", "pro")
    engine.dispose()

    with app.app_context():
        client = app.test_client()
        token = client.post("/api/v1/auth/login", json={"email": "payer@example.com", "password": "correct horse battery staple"}).get_json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/billing/subscription", headers=headers).get_json()["plan"] == "pro"
        me = client.get("/api/v1/users/me", headers=headers).get_json()
        assert (me["stripe_customer_id"], me["plan"]) == ("cus_payer", "pro")
        assert client.get("/api/v1/usage", headers=headers).get_json()["used"] == 60
        db.session.remove()
        db.engine.dispose()


def test_what_the_previous_release_writes_during_a_rollout_finds_its_organization(database, app):
    """The previous release registers users without organizations and writes rows without
    org_id while the new one serves: the gate gives such a user their personal organization at
    their first request, and the sweep gives the rows theirs."""
    from saas.sweeps import rows_without_org
    from saas.users.passwords import hash_password

    with app.app_context():
        db.session.execute(sa.text(
            "INSERT INTO users (email, hashed_password, stripe_customer_id, plan) VALUES ('old@example.com', :password, 'cus_old', 'pro')"
        ), {"password": hash_password("correct horse battery staple")})
        user_id = db.session.execute(sa.text("SELECT id FROM users WHERE email = 'old@example.com'")).scalar_one()
        db.session.execute(sa.text(
            "INSERT INTO subscriptions (stripe_subscription_id, user_id, stripe_customer_id, status, price_id, plan) "
            "VALUES ('sub_old', :user_id, 'cus_old', 'active', 'price_pro', 'pro')"
        ), {"user_id": user_id})
        db.session.execute(sa.text(
            "INSERT INTO usage_records (user_id, model, status, reserved_tokens, input_tokens, output_tokens) "
            "VALUES (:user_id, 'fake-model', 'settled', 0, 5, 5)"
        ), {"user_id": user_id})
        db.session.commit()
        client = app.test_client()
        token = client.post("/api/v1/auth/login", json={"email": "old@example.com", "password": "correct horse battery staple"}).get_json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        [personal] = client.get("/api/v1/orgs", headers=headers).get_json()
        assert (personal["personal"], personal["role"]) == (True, "owner")
        assert client.get("/api/v1/users/me", headers=headers).get_json()["stripe_customer_id"] == "cus_old"

        adopted = rows_without_org()
        assert (adopted["subscriptions"], adopted["usage_records"]) == (1, 1)
        assert client.get("/api/v1/billing/subscription", headers=headers).get_json()["status"] == "active"
        assert client.get("/api/v1/usage", headers=headers).get_json()["used"] == 10
        assert rows_without_org() == {"users": 0, "subscriptions": 0, "usage_records": 0, "ai_jobs": 0, "api_keys": 0}
        db.session.remove()


def test_a_forgotten_flask_db_upgrade_on_postgresql_is_named_in_the_answer(empty_postgres_database):
    """PostgreSQL names a missing table by its SQLSTATE (42P01), which the error handler reads."""
    client = make_app(DATABASE_URL=empty_postgres_database).test_client()
    attempt = client.post("/api/v1/auth/register", json={"email": "a@example.com", "password": "engines weave patterns"})
    assert attempt.status_code == 503
    assert "flask db upgrade" in attempt.get_json()["message"]
    with client.application.app_context():
        db.session.remove()
        db.engine.dispose()  # the database is dropped after the test
