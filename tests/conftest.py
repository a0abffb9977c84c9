"""Fixtures shared by every test file.

Two tiers. Tests that use PostgreSQL or Redis (the ``database``, ``redis_client`` fixtures or a
fixture built on them) are marked ``services`` here, automatically; ``make test`` starts
throwaway servers and runs everything, ``make test-fast`` runs only what needs neither
(``-m "not services"``): config, schemas, the gate, and the API on SQLite with inline jobs.

Apps are built from a mapping (``make_app(**settings)``), never by changing ``os.environ``.
"""
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from config import Config, normalize_database_url
from flask.testing import FlaskClient
from flask_migrate import upgrade

from saas import create_app, init_migrations
from saas.extensions import db
from tests.fake_dns import FakeDNS
from tests.fake_github import FakeGitHub
from tests.fake_oidc import FakeOIDCProvider
from tests.fake_openai import API_KEY as FAKE_OPENAI_API_KEY, FakeOpenAI
from tests.fake_stripe import FakeStripe
from tests.helpers import login, register

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_secret_for_the_suite"

# Set by `make test` (scripts/test-services.sh); absent under `make test-fast`.
DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")
SERVICE_FIXTURES = {"database", "redis_url", "redis_client"}
# Longer than any one test takes (see clear_of_a_new_month).
MONTH_END_MARGIN = timedelta(minutes=3)

FAKE_STRIPE = FakeStripe().start()
FAKE_OPENAI = FakeOpenAI().start()

BASE_ENV = {
    "APP_ENV": "testing",
    "DATABASE_URL": DATABASE_URL or "",
    "REDIS_URL": REDIS_URL or "",
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


def suite_config(**overrides):
    """The suite's settings plus ``overrides`` (variable names), as a Config."""
    return Config.from_env({**BASE_ENV, **{name: str(value) for name, value in overrides.items()}})


class BufferedClient(FlaskClient):
    """Reads each response whole and closes it, as a WSGI server does once it has sent it: what
    runs after the response (jobs without Redis) has run when the call returns."""

    def open(self, *args, buffered=True, **kwargs):
        return super().open(*args, buffered=buffered, **kwargs)


def make_app(**overrides):
    """A fresh app built from the suite's settings plus ``overrides`` (variable names)."""
    app = create_app(suite_config(**overrides))
    app.test_client_class = BufferedClient
    return app


def child_env(**overrides):
    """Environment for a subprocess (gunicorn, rq worker, flask CLI) of the test app."""
    return {**os.environ, **BASE_ENV, "PYTHONPATH": str(ROOT), **{k: str(v) for k, v in overrides.items()}}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def database():
    """An empty PostgreSQL database built by the migrations, once per session."""
    if not DATABASE_URL:
        pytest.fail("TEST_DATABASE_URL is not set: run the suite with `make test` (or `make test-fast`)")
    engine = sa.create_engine(normalize_database_url(DATABASE_URL))
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
def redis_url():
    if not REDIS_URL:
        pytest.fail("TEST_REDIS_URL is not set: run the suite with `make test`")
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url):
    return redis.Redis.from_url(redis_url)


@pytest.fixture(scope="session")
def app(database, redis_url):
    return make_app()


@pytest.fixture(autouse=True)
def clear_of_a_new_month():
    """Quotas, usage and the admin's figures count per calendar month (UTC): a test that starts
    just before a month ends waits for the new one, so none reads "this month" on both sides."""
    now = datetime.now(timezone.utc)
    new_month = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    if new_month - now < MONTH_END_MARGIN:
        time.sleep((new_month - now).total_seconds() + 1)


@pytest.fixture(autouse=True)
def clean_state(request):
    """Every test starts with empty tables, an empty Redis and fresh fake servers."""
    FAKE_STRIPE.reset()
    FAKE_OPENAI.reset()
    yield
    if "database" in request.fixturenames:
        _truncate_all()
    if SERVICE_FIXTURES & set(request.fixturenames) and REDIS_URL:
        redis.Redis.from_url(REDIS_URL).flushdb()


def _truncate_all():
    engine = sa.create_engine(normalize_database_url(DATABASE_URL))
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
def client(app, redis_client):
    with app.app_context():
        yield app.test_client()
        db.session.remove()


@pytest.fixture
def app_with(database, redis_url):
    """Build apps with settings overridden (variable names); each client comes with a context."""
    contexts = []

    def build(**overrides):
        built = make_app(**overrides)
        context = built.app_context()
        context.push()
        contexts.append(context)
        return built.test_client()

    yield build
    db.session.remove()
    for context in reversed(contexts):
        context.pop()


@pytest.fixture(scope="session")
def inline_app(database):
    """An app without Redis: jobs (a webhook's event, a customer) run inside the request."""
    return make_app(REDIS_URL="")


@pytest.fixture
def inline_client(inline_app):
    with inline_app.app_context():
        yield inline_app.test_client()
        db.session.remove()


@pytest.fixture
def embedded_with(tmp_path):
    """Build apps on the embedded default of `make run` (SQLite built by the migrations, no Redis,
    inline jobs), settings overridden by keyword; each yields its test client."""
    built = []

    def build(**overrides):
        app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / f'saas-{len(built)}.db'}", REDIS_URL="", **overrides)
        init_migrations(app)
        context = app.app_context()
        context.push()
        upgrade()
        built.append((app, context))
        return app.test_client()

    yield build
    for app, context in reversed(built):
        db.session.remove()
        db.engine.dispose()
        context.pop()


@pytest.fixture
def embedded_app(embedded_with):
    """The embedded default of `make run`: SQLite built by the migrations, no Redis, inline jobs."""
    return embedded_with().application


@pytest.fixture
def embedded_client(embedded_app):
    return embedded_app.test_client()


@pytest.fixture
def fake_stripe():
    return FAKE_STRIPE


@pytest.fixture(scope="module")
def smtp():
    """A real SMTP server (aiosmtpd) for the module's tests; ``smtp.settings`` point an app at it."""
    from tests.mail_support import SmtpServer  # it imports tests.servers, which imports this module

    server = SmtpServer().start()
    yield server
    server.close()


@pytest.fixture
def mailing(app_with, smtp):
    """Build clients of apps without Redis (jobs inline) whose mail goes to the module's SMTP
    server, settings overridden by keyword."""
    smtp.messages.clear()

    def build(**overrides):
        return app_with(REDIS_URL="", **smtp.settings, **overrides)

    return build


@pytest.fixture
def fake_openai():
    return FAKE_OPENAI


@pytest.fixture(scope="session")
def fake_servers():
    """Get a fake server by name, started on its first use and kept for the session (the fixtures
    below reset it for each test): ``fake_servers(name, factory)``."""
    started = {}

    def get(name, factory):
        if name not in started:
            started[name] = factory().start()
        return started[name]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture
def fake_oidc(fake_servers):
    """The social-login `oidc` provider (issuer at its root), reset: tests/fake_oidc.py."""
    return _reset(fake_servers("oidc", FakeOIDCProvider))


@pytest.fixture
def fake_idp(fake_servers):
    """A customer's identity provider for SSO, its issuer Keycloak-style (/realms/acme), reset."""
    return _reset(fake_servers("idp", lambda: FakeOIDCProvider(path="/realms/acme")))


@pytest.fixture
def second_fake_idp(fake_servers):
    """Another customer's identity provider (/realms/globex), with its own keys, reset."""
    return _reset(fake_servers("second-idp", lambda: FakeOIDCProvider(path="/realms/globex")))


@pytest.fixture
def fake_github(fake_servers):
    """GitHub's web flow (``base_url``) and API (``api_url``), reset: tests/fake_github.py."""
    return _reset(fake_servers("github", FakeGitHub))


@pytest.fixture
def fake_dns(fake_servers):
    """A DNS server answering the records a test sets (``nameserver`` for DNS_NAMESERVERS), reset:
    tests/fake_dns.py."""
    return _reset(fake_servers("dns", FakeDNS))


def _reset(server):
    server.reset()
    return server


@pytest.fixture
def user(client):
    return register(client)


@pytest.fixture
def tokens(client, user):
    return login(client)

