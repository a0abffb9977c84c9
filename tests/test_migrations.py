"""`flask db upgrade` builds the whole schema, and the models and migrations agree."""
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from config import MIGRATIONS_DIR
from saas.system.migrations import known_revisions

from saas.extensions import db
from tests.conftest import DATABASE_URL, ROOT, child_env, make_app


def flask_db(*args, database_url, timeout=None):
    return subprocess.run(
        [sys.executable, "-m", "flask", "db", *args],
        cwd=ROOT,
        env=child_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def empty_postgres_database(database):
    name = f"saas_migrations_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg2://", 1), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_users_table_is_the_seeds(empty_postgres_database):
    assert flask_db("upgrade", database_url=empty_postgres_database).returncode == 0
    engine = sa.create_engine(empty_postgres_database.replace("postgresql://", "postgresql+psycopg2://", 1))
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


def test_readiness_holds_while_a_newer_release_has_migrated_and_fails_when_behind(empty_postgres_database):
    """During a rolling update the database runs ahead of the old pods: they must stay ready."""
    assert flask_db("upgrade", database_url=empty_postgres_database).returncode == 0
    engine = sa.create_engine(empty_postgres_database.replace("postgresql://", "postgresql+psycopg2://", 1))
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
    assert flask_db("downgrade", database_url=empty_postgres_database).returncode == 0  # one back: the previous release
    engine = sa.create_engine(empty_postgres_database.replace("postgresql://", "postgresql+psycopg2://", 1))

    def revision():
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()

    previous = revision()
    _, [head] = known_revisions()
    try:
        with engine.connect() as serving:
            # A request of the previous release, in the middle of its transaction on users.
            serving.execute(sa.text("SELECT count(*) FROM users"))
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


def test_the_readiness_check_reads_the_same_heads_as_alembic():
    """saas/system/migrations.py reads revision ids without Alembic; it must agree with it."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
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
