"""Test fixtures: real PostgreSQL and Redis (started by `make test`), the fake Stripe server.

`make test` starts throwaway servers and exports TEST_DATABASE_URL and TEST_REDIS_URL; without
them the suite refuses to run rather than silently testing something else.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tests.fake_openai import API_KEY as FAKE_OPENAI_API_KEY, FakeOpenAI
from tests.fake_stripe import FakeStripe

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_secret_for_the_suite"
PASSWORD = "correct horse battery staple"


def _required_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the suite with `make test`", returncode=2)
    return value


DATABASE_URL = _required_env("TEST_DATABASE_URL")
REDIS_URL = _required_env("TEST_REDIS_URL")

FAKE_STRIPE = FakeStripe().start()
FAKE_OPENAI = FakeOpenAI().start()

BASE_ENV = {
    "APP_ENV": "testing",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "SECRET_KEY": TEST_SECRET,
    "STRIPE_SECRET_KEY": "sk_test_suite",
    "STRIPE_API_BASE": FAKE_STRIPE.url,
    "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "STRIPE_PLANS": "pro:price_pro,team:price_team",
    "STRIPE_MAX_NETWORK_RETRIES": "0",
    "STRIPE_TIMEOUT": "2",
    "STRIPE_METER_EVENT_NAME": "ai_tokens",
    "AI_API_BASE": FAKE_OPENAI.url,
    "AI_API_KEY": FAKE_OPENAI_API_KEY,
    "AI_MODEL": "fake-model",
    "AI_MAX_RETRIES": "0",
    "AI_TIMEOUT": "2",
    "AI_MAX_TOKENS": "100",
    "FRONTEND_URL": "http://localhost:3000",
    "ALLOWED_ORIGINS": "http://localhost:3000,https://app.example.com",
    "RATELIMIT_ENABLED": "false",
    "BCRYPT_ROUNDS": "4",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(BASE_ENV)

from saas import create_app  # noqa: E402  (the environment above must be set first)
from saas.extensions import db  # noqa: E402


def make_app(**overrides):
    """A fresh app built from the test environment plus ``overrides`` (env var names)."""
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update({name: str(value) for name, value in overrides.items()})
    try:
        return create_app()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def child_env(**overrides):
    """Environment for a subprocess (gunicorn, rq worker, flask CLI) of the test app."""
    return {**os.environ, **BASE_ENV, "PYTHONPATH": str(ROOT), **{k: str(v) for k, v in overrides.items()}}


@pytest.fixture(scope="session")
def database():
    """An empty database built by the migrations, once per session."""
    engine = sa.create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=child_env(), check=True,
        capture_output=True,
    )
    return DATABASE_URL


@pytest.fixture(scope="session")
def app(database):
    return make_app()


@pytest.fixture(autouse=True)
def clean_state(request):
    """Every test starts with empty tables, an empty Redis and a fresh fake Stripe."""
    FAKE_STRIPE.reset()
    FAKE_OPENAI.reset()
    yield
    if "database" in request.fixturenames:
        _truncate_all()
    redis.Redis.from_url(REDIS_URL).flushdb()


def _truncate_all():
    engine = sa.create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.begin() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != 'alembic_version'")
            )
        ]
        if tables:
            connection.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def client(app):
    with app.app_context():
        yield app.test_client()
        db.session.remove()


@pytest.fixture
def fake_stripe():
    return FAKE_STRIPE


@pytest.fixture
def fake_openai():
    return FAKE_OPENAI


@pytest.fixture
def redis_client():
    return redis.Redis.from_url(REDIS_URL)


def register(client, email="user@example.com", password=PASSWORD, **extra):
    response = client.post("/api/v1/auth/register", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def login(client, email="user@example.com", password=PASSWORD):
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user(client):
    return register(client)


@pytest.fixture
def tokens(client, user):
    return login(client)
