"""Configuration built from a mapping of environment variables (no server needed)."""
import pytest

from config import DEV_SECRET_KEY, Config, ConfigError, ServerSettings, normalize_database_url, parse_plans


def config(**values):
    return Config.from_env({name: str(value) for name, value in values.items()})


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db:5432/app",
        "postgresql://u:p@db:5432/app",
        "postgresql+asyncpg://u:p@db:5432/app",
        "postgresql+psycopg2://u:p@db:5432/app",
        "postgresql+psycopg://u:p@db:5432/app",
    ],
)
def test_every_postgres_url_spelling_drives_psycopg2(url):
    assert normalize_database_url(url) == "postgresql+psycopg2://u:p@db:5432/app"
    assert config(DATABASE_URL=url).flask_config()["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://u:p@db:5432/app"


def test_sqlite_url_is_left_alone():
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_stripe_plans_are_parsed_into_a_mapping():
    assert parse_plans("pro:price_123, team:price_456") == {"pro": "price_123", "team": "price_456"}
    assert config(STRIPE_PLANS="pro:price_123").stripe.plans == {"pro": "price_123"}


def test_a_malformed_stripe_plan_is_refused_with_its_name():
    with pytest.raises(ConfigError, match="STRIPE_PLANS"):
        config(STRIPE_PLANS="pro")


def test_a_malformed_number_is_refused_with_the_variable_name():
    with pytest.raises(ConfigError, match="ACCESS_TOKEN_EXPIRE_MINUTES"):
        config(ACCESS_TOKEN_EXPIRE_MINUTES="thirty")


def test_without_database_url_the_embedded_default_is_sqlite_under_instance():
    uri = config().flask_config()["SQLALCHEMY_DATABASE_URI"]
    assert uri.startswith("sqlite:///") and uri.endswith("instance/saas.db")


def test_an_empty_value_counts_as_unset():
    assert config(DATABASE_URL="", REDIS_URL=" ").redis.url is None


def test_app_env_picks_the_environment():
    assert config(APP_ENV="testing").env == "testing"
    with pytest.raises(ConfigError, match="APP_ENV"):
        config(APP_ENV="staging")


def test_token_lifetimes_come_from_the_mapping():
    settings = config(ACCESS_TOKEN_EXPIRE_MINUTES=5, REFRESH_TOKEN_EXPIRE_DAYS=2).flask_config()
    assert settings["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds() == 300
    assert settings["JWT_REFRESH_TOKEN_EXPIRES"].days == 2


def test_bcrypt_cost_is_12_unless_testing_or_set():
    assert config(APP_ENV="production", SECRET_KEY="x" * 40).bcrypt_rounds == 12
    assert config(APP_ENV="testing").bcrypt_rounds == 4
    assert config(APP_ENV="production", BCRYPT_ROUNDS=13).bcrypt_rounds == 13


def test_rate_limits_use_redis_when_there_is_one_and_memory_otherwise():
    assert config(REDIS_URL="redis://r:6379/0").flask_config()["RATELIMIT_STORAGE_URI"] == "redis://r:6379/0"
    assert config().flask_config()["RATELIMIT_STORAGE_URI"] == "memory://"
    assert config(REDIS_URL="redis://r/0", RATELIMIT_STORAGE_URI="redis://l/1").rate_limits.storage_uri == "redis://l/1"


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "x" * 40, "DEBUG": "true"}, "DEBUG"),
    ],
)
def test_production_refuses_unsafe_settings_naming_the_variable(values, variable):
    with pytest.raises(ConfigError, match=variable):
        config(APP_ENV="production", **values).validate()


@pytest.mark.parametrize("variable", ["INVITATION_SEND_LIMIT", "RATELIMIT_DEFAULT", "RATELIMIT_LOGIN_IP"])
def test_a_malformed_rate_limit_is_refused_with_its_name(variable):
    """flask-limiter skips a limit it cannot parse, at every request: the limit would be off."""
    with pytest.raises(ConfigError, match=variable):
        Config.from_env({variable: "twenty an hour"})
    assert Config.from_env({variable: "20/hour"}).flask_config()[variable] == "20/hour"


def test_invitation_and_api_key_limits_have_their_defaults():
    flask_config = Config.from_env({}).flask_config()
    assert (flask_config["INVITATION_SEND_LIMIT"], flask_config["API_KEYS_MAX"]) == ("20/hour", 25)
    with pytest.raises(ConfigError, match="API_KEYS_MAX"):
        Config.from_env({"API_KEYS_MAX": "0"})


def test_production_with_a_long_secret_is_accepted():
    config(APP_ENV="production", SECRET_KEY="s" * 48).validate()


def test_development_falls_back_to_the_development_secret():
    assert config().flask_config()["SECRET_KEY"] == DEV_SECRET_KEY


def test_server_settings_read_gunicorns_variables():
    server = ServerSettings.from_env({"GUNICORN_WORKERS": "3", "GUNICORN_THREADS": "16", "PORT": "8010"})
    assert (server.workers, server.threads, server.bind_address) == (3, 16, "0.0.0.0:8010")
    assert ServerSettings.from_env({"GUNICORN_BIND": "127.0.0.1:9"}).bind_address == "127.0.0.1:9"


def test_settings_are_read_from_the_mapping_not_the_process_environment(monkeypatch):
    monkeypatch.setenv("APP_NAME", "from-the-environment")
    assert config(APP_NAME="from-the-mapping").app.name == "from-the-mapping"
    assert config().app.name == "saas"
