"""`flask db upgrade` builds the whole schema, and the models and migrations agree."""
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import DATABASE_URL, ROOT, child_env


def flask_db(*args, database_url):
    return subprocess.run(
        [sys.executable, "-m", "flask", "db", *args],
        cwd=ROOT,
        env=child_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
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
