"""Configuration classes, every value read from the environment.

``APP_ENV`` (development, testing, production) picks the class; a ``.env`` file in the
project root is read first when present, without overriding the real environment.
"""
import os
from datetime import timedelta
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env", override=False)

MIN_SECRET_BYTES = 32
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789"


def env_str(name, default=None):
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def env_bool(name, default=False):
    value = env_str(name)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


def env_int(name, default):
    value = env_str(name)
    return default if value is None else int(value)


def env_float(name, default):
    value = env_str(name)
    return default if value is None else float(value)


def env_list(name, default=""):
    return [item.strip() for item in (env_str(name, default) or "").split(",") if item.strip()]


def normalize_database_url(url):
    """Make every accepted PostgreSQL URL spelling drive psycopg2.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed, and the
    seed's clients still carry ``postgres://`` or ``postgresql+asyncpg://`` URLs.
    """
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _parse_pairs(raw, setting, value_name):
    pairs = {}
    for pair in (raw or "").split(","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition(":")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{setting} entry {pair!r} is not of the form plan:{value_name}")
        pairs[name.strip()] = value.strip()
    return pairs


def parse_plans(raw):
    """``pro:price_123,team:price_456`` -> ``{"pro": "price_123", "team": "price_456"}``."""
    return _parse_pairs(raw, "STRIPE_PLANS", "price_id")


def parse_quotas(raw):
    """``free:20000,pro:2000000`` -> ``{"free": 20000, "pro": 2000000}``."""
    quotas = _parse_pairs(raw, "PLAN_QUOTAS", "tokens")
    for name, tokens in quotas.items():
        if not tokens.isdigit():
            raise ValueError(f"PLAN_QUOTAS entry {name}:{tokens} needs a whole number of tokens")
    return {name: int(tokens) for name, tokens in quotas.items()}


class Config:
    """Base settings. Values are read when the class is instantiated, so a test (or a
    process that changed its environment) always gets what the environment says now."""

    APP_ENV = "development"
    TESTING = False
    DEFAULT_BCRYPT_ROUNDS = 12

    def __init__(self):
        self.APP_NAME = env_str("APP_NAME", "saas")
        self.APP_VERSION = env_str("APP_VERSION", "1.0.0")
        self.DEBUG = env_bool("DEBUG", False)
        self.SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)

        self.SQLALCHEMY_DATABASE_URI = normalize_database_url(
            env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'instance' / 'saas.db'}")
        )
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        if self.SQLALCHEMY_DATABASE_URI.startswith("postgresql"):
            self.SQLALCHEMY_ENGINE_OPTIONS.update(
                pool_size=env_int("DB_POOL_SIZE", 10),
                max_overflow=env_int("DB_MAX_OVERFLOW", 10),
                pool_timeout=env_int("DB_POOL_TIMEOUT", 10),
                pool_recycle=env_int("DB_POOL_RECYCLE", 1800),
                connect_args={"connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5)},
            )

        # No REDIS_URL means no Redis: jobs run inline and rate limits use process memory.
        self.REDIS_URL = env_str("REDIS_URL")
        self.REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 2.0)
        self.RQ_QUEUE = env_str("RQ_QUEUE", "default")

        self.JWT_SECRET_KEY = self.SECRET_KEY
        self.JWT_ALGORITHM = "HS256"
        self.JWT_DECODE_ALGORITHMS = ["HS256"]
        self.JWT_TOKEN_LOCATION = ["headers"]
        self.JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=env_int("ACCESS_TOKEN_EXPIRE_MINUTES", 30))
        self.JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=env_int("REFRESH_TOKEN_EXPIRE_DAYS", 7))
        self.JWT_ERROR_MESSAGE_KEY = "message"
        self.JWT_COOKIE_CSRF_PROTECT = False  # tokens travel in headers, never cookies

        self.BCRYPT_ROUNDS = env_int("BCRYPT_ROUNDS", self.DEFAULT_BCRYPT_ROUNDS)

        self.STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
        self.STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY")
        self.STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
        self.STRIPE_WEBHOOK_TOLERANCE = env_int("STRIPE_WEBHOOK_TOLERANCE", 300)
        self.STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com")
        self.STRIPE_TIMEOUT = env_float("STRIPE_TIMEOUT", 10.0)
        self.STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 2)
        self.STRIPE_PLANS = parse_plans(env_str("STRIPE_PLANS", ""))
        self.BILLING_PAST_DUE_GRACE_DAYS = env_int("BILLING_PAST_DUE_GRACE_DAYS", 7)
        # Token usage is reported to this Stripe Billing meter; unset means usage is not billed.
        self.STRIPE_METER_EVENT_NAME = env_str("STRIPE_METER_EVENT_NAME")

        # Any OpenAI-compatible /v1/chat/completions provider: OpenAI, OpenRouter, vLLM, Ollama.
        self.AI_API_BASE = env_str("AI_API_BASE", "https://api.openai.com/v1")
        self.AI_API_KEY = env_str("AI_API_KEY")
        self.AI_MODEL = env_str("AI_MODEL", "gpt-4o-mini")
        # Models a caller may ask for besides AI_MODEL; others are refused (they cost more).
        self.AI_ALLOWED_MODELS = env_list("AI_ALLOWED_MODELS")
        self.AI_TIMEOUT = env_float("AI_TIMEOUT", 60.0)
        self.AI_MAX_RETRIES = env_int("AI_MAX_RETRIES", 2)
        # The default and the ceiling of max_tokens; it is also what a call reserves of the quota.
        self.AI_MAX_TOKENS = env_int("AI_MAX_TOKENS", 1024)
        self.PLAN_QUOTAS = parse_quotas(env_str("PLAN_QUOTAS", "free:20000,pro:2000000"))

        self.FRONTEND_URL = env_str("FRONTEND_URL", "http://localhost:3000")
        self.ALLOWED_ORIGINS = env_list("ALLOWED_ORIGINS", "http://localhost:3000,http://localhost:8000")

        self.RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
        self.RATELIMIT_STORAGE_URI = env_str("RATELIMIT_STORAGE_URI", self.REDIS_URL or "memory://")
        self.RATELIMIT_DEFAULT = env_str("RATELIMIT_DEFAULT", "600 per minute")
        self.RATELIMIT_LOGIN_IP = env_str("RATELIMIT_LOGIN_IP", "30 per minute")
        self.RATELIMIT_LOGIN_ACCOUNT = env_str("RATELIMIT_LOGIN_ACCOUNT", "10 per 15 minutes")
        self.RATELIMIT_REGISTER_IP = env_str("RATELIMIT_REGISTER_IP", "100 per hour")
        self.RATELIMIT_REFRESH_IP = env_str("RATELIMIT_REFRESH_IP", "60 per minute")

        self.PROXY_FIX_HOPS = env_int("PROXY_FIX_HOPS", 0)
        self.MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
        self.LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
        self.METRICS_TOKEN = env_str("METRICS_TOKEN")
        self.SENTRY_DSN = env_str("SENTRY_DSN")
        self.SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0)

        self.API_TITLE = self.APP_NAME
        self.API_VERSION = self.APP_VERSION
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "/docs"
        self.OPENAPI_SWAGGER_UI_URL = env_str(
            "SWAGGER_UI_URL", "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"
        )
        self.OPENAPI_REDOC_PATH = "/redoc"
        self.OPENAPI_REDOC_URL = env_str(
            "REDOC_URL", "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"
        )

    def validate(self):
        """Refuse settings that would be unsafe; each message names the variable."""


class DevelopmentConfig(Config):
    APP_ENV = "development"


class TestingConfig(Config):
    APP_ENV = "testing"
    TESTING = True
    # bcrypt at cost 12 would make the suite minutes slower; strength is not under test.
    DEFAULT_BCRYPT_ROUNDS = 4


class ProductionConfig(Config):
    APP_ENV = "production"

    def validate(self):
        secret = env_str("SECRET_KEY")
        if not secret:
            raise RuntimeError("SECRET_KEY is not set: production needs a random secret of 32+ bytes")
        if secret == DEV_SECRET_KEY:
            raise RuntimeError("SECRET_KEY is the development default: set a random secret of 32+ bytes")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise RuntimeError(
                f"SECRET_KEY is {len(secret.encode())} bytes long: production needs at least "
                f"{MIN_SECRET_BYTES}"
            )
        if self.DEBUG:
            raise RuntimeError("DEBUG is true: production refuses to start with DEBUG on")


CONFIGS = {"development": DevelopmentConfig, "testing": TestingConfig, "production": ProductionConfig}


def config_for_env(app_env=None):
    """The settings for ``app_env`` (default: ``APP_ENV``), read from the environment now."""
    name = (app_env or env_str("APP_ENV", "development")).lower()
    if name not in CONFIGS:
        raise RuntimeError(f"APP_ENV={name!r} is not one of: {', '.join(CONFIGS)}")
    return CONFIGS[name]()
