"""Configuration read from the environment."""
import pytest

from config import config_for_env, normalize_database_url, parse_plans


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db:5432/app",
        "postgresql://u:p@db:5432/app",
        "postgresql+asyncpg://u:p@db:5432/app",
    ],
)
def test_every_postgres_url_spelling_drives_psycopg2(url):
    assert normalize_database_url(url) == "postgresql+psycopg2://u:p@db:5432/app"


def test_sqlite_url_is_left_alone():
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_stripe_plans_are_parsed_into_a_mapping():
    assert parse_plans("pro:price_123, team:price_456") == {"pro": "price_123", "team": "price_456"}


def test_a_malformed_stripe_plan_is_refused_with_its_name():
    with pytest.raises(ValueError, match="STRIPE_PLANS"):
        parse_plans("pro")


def test_without_database_url_the_embedded_default_is_sqlite_under_instance(monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    uri = config_for_env("development").SQLALCHEMY_DATABASE_URI
    assert uri.startswith("sqlite:///") and uri.endswith("instance/saas.db")


def test_app_env_picks_the_config_class(monkeypatch):
    monkeypatch.setenv("APP_ENV", "testing")
    assert config_for_env().APP_ENV == "testing"
    monkeypatch.setenv("APP_ENV", "staging")
    with pytest.raises(RuntimeError, match="APP_ENV"):
        config_for_env()


def test_token_lifetimes_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "5")
    monkeypatch.setenv("REFRESH_TOKEN_EXPIRE_DAYS", "2")
    config = config_for_env("testing")
    assert config.JWT_ACCESS_TOKEN_EXPIRES.total_seconds() == 300
    assert config.JWT_REFRESH_TOKEN_EXPIRES.days == 2


def test_production_bcrypt_cost_defaults_to_12(monkeypatch):
    monkeypatch.delenv("BCRYPT_ROUNDS")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    assert config_for_env("production").BCRYPT_ROUNDS == 12


def test_production_refuses_the_published_development_secret(monkeypatch):
    from config import DEV_SECRET_KEY

    monkeypatch.setenv("SECRET_KEY", DEV_SECRET_KEY)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        config_for_env("production").validate()
