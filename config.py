"""Every setting of the app, grouped by concern, read from a mapping of environment variables.

``Config.from_env()`` reads the process environment (with a ``.env`` file in the project root
underneath it: real variables win); ``Config.from_env({...})`` reads any mapping, which is how
tests and scripts build an app without touching ``os.environ``. Each group is a
pydantic-settings class whose field aliases are the variable names; an empty value counts as
unset. ``APP_ENV`` (development, testing, production) picks the environment's defaults and checks.
gunicorn.conf.py reads its settings from here too (``ServerSettings``).
"""
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from dotenv import dotenv_values
from limits import parse_many
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

BASE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = BASE_DIR / "migrations"

MIN_SECRET_BYTES = 32
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789"
APP_ENVS = ("development", "testing", "production")


class ConfigError(RuntimeError):
    """A setting is missing, malformed or unsafe; the message names the variable."""


def normalize_database_url(url):
    """Make every accepted PostgreSQL URL spelling drive psycopg2.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed, and the
    seed's clients still carry ``postgres://`` or ``postgresql+asyncpg://`` URLs.
    """
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _split_list(raw):
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _parse_pairs(raw, setting, value_name):
    if not isinstance(raw, str):
        return raw
    pairs = {}
    for pair in raw.split(","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition(":")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{setting} entry {pair.strip()!r} is not of the form name:{value_name}")
        pairs[name.strip()] = value.strip()
    return pairs


def parse_plans(raw):
    """``pro:price_123,team:price_456`` -> ``{"pro": "price_123", "team": "price_456"}``."""
    return _parse_pairs(raw, "STRIPE_PLANS", "price_id")


def parse_quotas(raw):
    """``free:20000,pro:2000000`` -> ``{"free": 20000, "pro": 2000000}``."""
    quotas = _parse_pairs(raw, "PLAN_QUOTAS", "tokens")
    for name, tokens in quotas.items():
        if not str(tokens).isdigit():
            raise ValueError(f"PLAN_QUOTAS entry {name}:{tokens} needs a whole number of tokens")
    return {name: int(tokens) for name, tokens in quotas.items()}


def parse_rate_limit(raw):
    """A flask-limiter limit (``20/hour``, ``10 per 15 minutes``, ``5/minute;100/day``), checked
    at start: a malformed one would otherwise be skipped at every request, leaving it unlimited."""
    try:
        parse_many(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a rate limit such as '20/hour' or '10 per 15 minutes'") from None
    return raw


CommaList = Annotated[list[str], BeforeValidator(_split_list)]
RateLimit = Annotated[str, AfterValidator(parse_rate_limit)]
Plans = Annotated[dict[str, str], BeforeValidator(parse_plans)]
Quotas = Annotated[dict[str, int], BeforeValidator(parse_quotas)]


class Settings(BaseSettings):
    """A group of settings read only from the mapping given to it (never from os.environ)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **other_sources):
        return (init_settings,)


class AppSettings(Settings):
    env: Literal["development", "testing", "production"] = Field("development", alias="APP_ENV")
    name: str = Field("saas", alias="APP_NAME")
    version: str = Field("1.0.0", alias="APP_VERSION")
    debug: bool = Field(False, alias="DEBUG")
    secret_key: str | None = Field(None, alias="SECRET_KEY")
    frontend_url: str = Field("http://localhost:3000", alias="FRONTEND_URL")
    allowed_origins: CommaList = Field(
        ["http://localhost:3000", "http://localhost:8000"], alias="ALLOWED_ORIGINS"
    )
    max_content_length: int = Field(1024 * 1024, alias="MAX_CONTENT_LENGTH", ge=1)
    # Trusted proxies in front; the client address is taken from that position of X-Forwarded-For.
    proxy_fix_hops: int = Field(0, alias="PROXY_FIX_HOPS", ge=0)


class DatabaseSettings(Settings):
    url: str = Field(f"sqlite:///{BASE_DIR / 'instance' / 'saas.db'}", alias="DATABASE_URL")
    pool_size: int = Field(10, alias="DB_POOL_SIZE", ge=1)
    max_overflow: int = Field(10, alias="DB_MAX_OVERFLOW", ge=0)
    pool_timeout: float = Field(10, alias="DB_POOL_TIMEOUT", gt=0)
    pool_recycle: int = Field(1800, alias="DB_POOL_RECYCLE")
    connect_timeout: int = Field(5, alias="DB_CONNECT_TIMEOUT", ge=1)
    # The gate's lookups are prepared once per connection (saas/core/database.py). Off behind
    # a PgBouncer in transaction mode, where a connection's prepared statements do not follow it.
    prepared_statements: bool = Field(True, alias="DB_PREPARED_STATEMENTS")


class RedisSettings(Settings):
    # No REDIS_URL means no Redis: jobs run inline and rate limits use process memory.
    url: str | None = Field(None, alias="REDIS_URL")
    socket_timeout: float = Field(2.0, alias="REDIS_SOCKET_TIMEOUT", gt=0)


class TokenSettings(Settings):
    access_minutes: int = Field(30, alias="ACCESS_TOKEN_EXPIRE_MINUTES", ge=1)
    refresh_days: int = Field(7, alias="REFRESH_TOKEN_EXPIRE_DAYS", ge=1)
    # None: 12, or 4 under APP_ENV=testing (strength is not under test; speed is).
    bcrypt_rounds: int | None = Field(None, alias="BCRYPT_ROUNDS", ge=4, le=31)


class StripeSettings(Settings):
    secret_key: str | None = Field(None, alias="STRIPE_SECRET_KEY")
    publishable_key: str | None = Field(None, alias="STRIPE_PUBLISHABLE_KEY")
    webhook_secret: str | None = Field(None, alias="STRIPE_WEBHOOK_SECRET")
    webhook_tolerance: int = Field(300, alias="STRIPE_WEBHOOK_TOLERANCE", ge=1)
    api_base: str = Field("https://api.stripe.com", alias="STRIPE_API_BASE")
    timeout: float = Field(10.0, alias="STRIPE_TIMEOUT", gt=0)
    max_network_retries: int = Field(2, alias="STRIPE_MAX_NETWORK_RETRIES", ge=0)
    plans: Plans = Field({}, alias="STRIPE_PLANS")
    past_due_grace_days: int = Field(7, alias="BILLING_PAST_DUE_GRACE_DAYS", ge=0)
    # Plans billed per seat: their subscription's quantity follows the organisation's member count.
    seat_plans: CommaList = Field([], alias="STRIPE_SEAT_PLANS")
    # Request threads (per gunicorn worker) that Stripe calls may hold at once; more are a 503.
    max_concurrent: int = Field(3, alias="STRIPE_MAX_CONCURRENT", ge=1)
    # Token usage is reported to this Stripe Billing meter; unset means usage is not billed.
    meter_event_name: str | None = Field(None, alias="STRIPE_METER_EVENT_NAME")


class AiSettings(Settings):
    # Any OpenAI-compatible /v1/chat/completions provider: OpenAI, OpenRouter, vLLM, Ollama.
    api_base: str = Field("https://api.openai.com/v1", alias="AI_API_BASE")
    api_key: str | None = Field(None, alias="AI_API_KEY")
    model: str = Field("gpt-4o-mini", alias="AI_MODEL")
    # Models a caller may ask for besides AI_MODEL; others are refused (they cost more).
    allowed_models: CommaList = Field([], alias="AI_ALLOWED_MODELS")
    timeout: float = Field(60.0, alias="AI_TIMEOUT", gt=0)
    max_retries: int = Field(2, alias="AI_MAX_RETRIES", ge=0)
    # The default and the ceiling of max_tokens; it is also what a call reserves of the quota.
    max_tokens: int = Field(1024, alias="AI_MAX_TOKENS", ge=1)
    plan_quotas: Quotas = Field({"free": 20000, "pro": 2000000}, alias="PLAN_QUOTAS")
    # Chats being answered plus AI jobs queued or running, per user, at once.
    max_concurrent: int = Field(4, alias="AI_MAX_CONCURRENT", ge=1)
    # Request threads (per gunicorn worker) that calls to the provider may hold at once.
    max_concurrent_calls: int = Field(3, alias="AI_MAX_CONCURRENT_CALLS", ge=1)


class RateLimitSettings(Settings):
    enabled: bool = Field(True, alias="RATELIMIT_ENABLED")
    # None: REDIS_URL, else process memory.
    storage_uri: str | None = Field(None, alias="RATELIMIT_STORAGE_URI")
    default: RateLimit = Field("600 per minute", alias="RATELIMIT_DEFAULT")
    login_ip: RateLimit = Field("30 per minute", alias="RATELIMIT_LOGIN_IP")
    login_account: RateLimit = Field("10 per 15 minutes", alias="RATELIMIT_LOGIN_ACCOUNT")
    register_ip: RateLimit = Field("100 per hour", alias="RATELIMIT_REGISTER_IP")
    refresh_ip: RateLimit = Field("60 per minute", alias="RATELIMIT_REFRESH_IP")
    # Password reset requests per address and per email asked about (every request counts).
    password_reset_ip: RateLimit = Field("20 per hour", alias="RATELIMIT_PASSWORD_RESET_IP")
    password_reset_account: RateLimit = Field("5 per hour", alias="RATELIMIT_PASSWORD_RESET_ACCOUNT")
    # Messages a signed-in user can have sent: new verification links, email changes.
    email_send: RateLimit = Field("5 per hour", alias="RATELIMIT_EMAIL_SEND")
    # Invitations an organisation's admins may send, per sender and per organisation.
    invitation_send: RateLimit = Field("20/hour", alias="INVITATION_SEND_LIMIT")


class MailSettings(Settings):
    # None: "smtp" when SMTP_HOST is set, else "console" (the message, links included, in the log).
    backend: Literal["smtp", "console"] | None = Field(None, alias="MAIL_BACKEND")
    smtp_host: str | None = Field(None, alias="SMTP_HOST")
    smtp_port: int = Field(587, alias="SMTP_PORT", ge=1, le=65535)
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD")
    # STARTTLS on a plain connection (587), or implicit TLS from the first byte (465) with SMTP_SSL.
    smtp_starttls: bool = Field(True, alias="SMTP_STARTTLS")
    smtp_ssl: bool = Field(False, alias="SMTP_SSL")
    smtp_timeout: float = Field(10.0, alias="SMTP_TIMEOUT", gt=0)
    mail_from: str = Field("saas <no-reply@localhost>", alias="MAIL_FROM")
    # Front-end pages the links lead to: FRONTEND_URL + path + ?token=...
    email_verify_path: str = Field("/verify-email", alias="EMAIL_VERIFY_PATH")
    password_reset_path: str = Field("/reset-password", alias="PASSWORD_RESET_PATH")
    email_verify_token_hours: int = Field(48, alias="EMAIL_VERIFY_TOKEN_HOURS", ge=1)
    password_reset_token_minutes: int = Field(60, alias="PASSWORD_RESET_TOKEN_MINUTES", ge=1)
    # True: unverified users get a 403 on billing, API keys and AI.
    require_verified_email: bool = Field(False, alias="REQUIRE_VERIFIED_EMAIL")

    @property
    def effective_backend(self):
        return self.backend or ("smtp" if self.smtp_host else "console")


class OrgSettings(Settings):
    invitation_ttl_days: int = Field(7, alias="INVITATION_TTL_DAYS", ge=1, le=90)
    # The front-end page an invitation links to: FRONTEND_URL + path + ?token=...
    invitation_path: str = Field("/invitations", alias="INVITATION_PATH")


class ApiKeySettings(Settings):
    # The most keys an organisation may have (a user's personal keys are their personal
    # organisation's), and the most one user may have made across the organisations they are in.
    max_keys: int = Field(25, alias="API_KEYS_MAX", ge=1)


class AdminSettings(Settings):
    # The first operator: `flask users ensure-superuser` (run after `flask db upgrade` by the
    # compose and Kubernetes migrate steps) creates this superuser if the address has no account.
    first_superuser_email: str | None = Field(None, alias="FIRST_SUPERUSER_EMAIL")
    first_superuser_password: str | None = Field(None, alias="FIRST_SUPERUSER_PASSWORD")


class WorkerSettings(Settings):
    # How often the worker runs its repairs (saas/sweeps.py) and its own RQ housekeeping.
    sweep_interval_seconds: int = Field(60, alias="SWEEP_INTERVAL_SECONDS", ge=5)


class ObservabilitySettings(Settings):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", alias="LOG_LEVEL"
    )
    metrics_token: str | None = Field(None, alias="METRICS_TOKEN")
    sentry_dsn: str | None = Field(None, alias="SENTRY_DSN")
    sentry_traces_sample_rate: float = Field(0.0, alias="SENTRY_TRACES_SAMPLE_RATE", ge=0, le=1)


class DocsSettings(Settings):
    # The app's own copies (saas/web/docs.py); a CDN URL here loads them from there instead.
    swagger_ui_url: str = Field("/docs/assets/swagger-ui/", alias="SWAGGER_UI_URL")
    redoc_url: str = Field("/docs/assets/redoc/redoc.standalone.js", alias="REDOC_URL")


def _cpus():
    # Respect CPU pinning (containers, taskset) instead of the host's core count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class ServerSettings(Settings):
    """gunicorn's settings (gunicorn.conf.py reads them from here)."""

    port: int = Field(8000, alias="PORT")
    bind: str | None = Field(None, alias="GUNICORN_BIND")
    # One worker per core, each with 8 threads: measured best for this app (bench/RESULTS.md).
    workers: int = Field(default_factory=lambda: max(2, _cpus()), alias="GUNICORN_WORKERS", ge=1)
    threads: int = Field(8, alias="GUNICORN_THREADS", ge=1)
    timeout: int = Field(30, alias="GUNICORN_TIMEOUT", ge=1)
    graceful_timeout: int = Field(30, alias="GUNICORN_GRACEFUL_TIMEOUT", ge=1)
    keepalive: int = Field(5, alias="GUNICORN_KEEPALIVE", ge=0)
    # Recycling workers bounds slow memory leaks; 0 disables it.
    max_requests: int = Field(0, alias="GUNICORN_MAX_REQUESTS", ge=0)
    max_requests_jitter: int = Field(0, alias="GUNICORN_MAX_REQUESTS_JITTER", ge=0)
    accesslog: str | None = Field(None, alias="GUNICORN_ACCESSLOG")
    loglevel: str = Field("info", alias="GUNICORN_LOGLEVEL")
    # Only trust X-Forwarded-* from these proxies.
    forwarded_allow_ips: str = Field("127.0.0.1", alias="FORWARDED_ALLOW_IPS")

    @property
    def bind_address(self):
        return self.bind or f"0.0.0.0:{self.port}"

    @classmethod
    def from_env(cls, environ=None):
        return _build(cls, _environment(environ))


def _environment(environ):
    """The mapping to read: ``environ``, or os.environ over the project's ``.env``; blanks dropped."""
    if environ is None:
        environ = {**dotenv_values(BASE_DIR / ".env"), **os.environ}
    return {name: value for name, value in environ.items() if value is not None and str(value).strip()}


def _build(settings_class, values):
    try:
        return settings_class(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise ConfigError(f"invalid setting: {problems}") from None


class Config:
    """The app's settings by concern; ``flask_config()`` is what ``create_app`` loads."""

    def __init__(self, values):
        self.app = _build(AppSettings, values)
        self.database = _build(DatabaseSettings, values)
        self.redis = _build(RedisSettings, values)
        self.tokens = _build(TokenSettings, values)
        self.stripe = _build(StripeSettings, values)
        self.ai = _build(AiSettings, values)
        self.rate_limits = _build(RateLimitSettings, values)
        self.mail = _build(MailSettings, values)
        self.orgs = _build(OrgSettings, values)
        self.api_keys = _build(ApiKeySettings, values)
        self.admin = _build(AdminSettings, values)
        self.worker = _build(WorkerSettings, values)
        self.observability = _build(ObservabilitySettings, values)
        self.docs = _build(DocsSettings, values)

    @classmethod
    def from_env(cls, environ=None):
        """Settings from ``environ`` (any mapping of variable names to strings), or from the
        process environment over ``.env`` when None."""
        return cls(_environment(environ))

    @property
    def env(self):
        return self.app.env

    @property
    def testing(self):
        return self.app.env == "testing"

    @property
    def secret_key(self):
        return self.app.secret_key or DEV_SECRET_KEY

    @property
    def bcrypt_rounds(self):
        if self.tokens.bcrypt_rounds is not None:
            return self.tokens.bcrypt_rounds
        return 4 if self.testing else 12

    def validate(self):
        """Refuse settings that would be unsafe in production, or cannot work; each message
        names the variable."""
        self.validate_mail()
        if self.env != "production":
            return
        secret = self.app.secret_key
        if not secret:
            raise ConfigError("SECRET_KEY is not set: production needs a random secret of 32+ bytes")
        if secret == DEV_SECRET_KEY:
            raise ConfigError("SECRET_KEY is the development default: set a random secret of 32+ bytes")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"SECRET_KEY is {len(secret.encode())} bytes long: production needs at least {MIN_SECRET_BYTES}"
            )
        if self.app.debug:
            raise ConfigError("DEBUG is true: production refuses to start with DEBUG on")

    def validate_mail(self):
        """Mail settings that cannot work, in any environment."""
        if self.mail.backend == "smtp" and not self.mail.smtp_host:
            raise ConfigError("MAIL_BACKEND is smtp but SMTP_HOST is not set")
        if bool(self.mail.smtp_username) != bool(self.mail.smtp_password):
            raise ConfigError("SMTP_USERNAME and SMTP_PASSWORD go together: set both or neither")

    def flask_config(self):
        """The flat ``app.config`` mapping: Flask's, the extensions' and ours."""
        app, database, redis, stripe, ai = self.app, self.database, self.redis, self.stripe, self.ai
        limits, observability, docs = self.rate_limits, self.observability, self.docs
        database_uri = normalize_database_url(database.url)
        # Pre-ping makes the ORM session survive a PostgreSQL restart (a round trip per checkout);
        # the gate's lookup skips it (saas/core/database.py) and retries instead.
        engine_options = {"pool_pre_ping": True}
        if database_uri.startswith("postgresql"):
            engine_options.update(
                pool_size=database.pool_size,
                max_overflow=database.max_overflow,
                pool_timeout=database.pool_timeout,
                pool_recycle=database.pool_recycle,
                connect_args={"connect_timeout": database.connect_timeout},
            )
        return {
            "APP_ENV": app.env,
            "APP_NAME": app.name,
            "APP_VERSION": app.version,
            "DEBUG": app.debug,
            "TESTING": self.testing,
            "SECRET_KEY": self.secret_key,
            "FRONTEND_URL": app.frontend_url,
            "ALLOWED_ORIGINS": list(app.allowed_origins),
            "MAX_CONTENT_LENGTH": app.max_content_length,
            "PROXY_FIX_HOPS": app.proxy_fix_hops,
            # Database
            "SQLALCHEMY_DATABASE_URI": database_uri,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "DB_PREPARED_STATEMENTS": database.prepared_statements,
            # Redis
            "REDIS_URL": redis.url,
            "REDIS_SOCKET_TIMEOUT": redis.socket_timeout,
            # Tokens and passwords (flask-jwt-extended's names)
            "JWT_SECRET_KEY": self.secret_key,
            "JWT_ALGORITHM": "HS256",
            "JWT_DECODE_ALGORITHMS": ["HS256"],
            "JWT_TOKEN_LOCATION": ["headers"],
            "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=self.tokens.access_minutes),
            "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=self.tokens.refresh_days),
            "BCRYPT_ROUNDS": self.bcrypt_rounds,
            # Stripe
            "STRIPE_SECRET_KEY": stripe.secret_key,
            "STRIPE_PUBLISHABLE_KEY": stripe.publishable_key,
            "STRIPE_WEBHOOK_SECRET": stripe.webhook_secret,
            "STRIPE_WEBHOOK_TOLERANCE": stripe.webhook_tolerance,
            "STRIPE_API_BASE": stripe.api_base,
            "STRIPE_TIMEOUT": stripe.timeout,
            "STRIPE_MAX_NETWORK_RETRIES": stripe.max_network_retries,
            "STRIPE_PLANS": dict(stripe.plans),
            "BILLING_PAST_DUE_GRACE_DAYS": stripe.past_due_grace_days,
            "STRIPE_SEAT_PLANS": list(stripe.seat_plans),
            "STRIPE_METER_EVENT_NAME": stripe.meter_event_name,
            "STRIPE_MAX_CONCURRENT": stripe.max_concurrent,
            # AI provider and quotas
            "AI_API_BASE": ai.api_base,
            "AI_API_KEY": ai.api_key,
            "AI_MODEL": ai.model,
            "AI_ALLOWED_MODELS": list(ai.allowed_models),
            "AI_TIMEOUT": ai.timeout,
            "AI_MAX_RETRIES": ai.max_retries,
            "AI_MAX_TOKENS": ai.max_tokens,
            "PLAN_QUOTAS": dict(ai.plan_quotas),
            "AI_MAX_CONCURRENT": ai.max_concurrent,
            "AI_MAX_CONCURRENT_CALLS": ai.max_concurrent_calls,
            # Mail
            "MAIL_BACKEND": self.mail.effective_backend,
            "SMTP_HOST": self.mail.smtp_host,
            "SMTP_PORT": self.mail.smtp_port,
            "SMTP_USERNAME": self.mail.smtp_username,
            "SMTP_PASSWORD": self.mail.smtp_password,
            "SMTP_STARTTLS": self.mail.smtp_starttls,
            "SMTP_SSL": self.mail.smtp_ssl,
            "SMTP_TIMEOUT": self.mail.smtp_timeout,
            "MAIL_FROM": self.mail.mail_from,
            "EMAIL_VERIFY_PATH": self.mail.email_verify_path,
            "PASSWORD_RESET_PATH": self.mail.password_reset_path,
            "EMAIL_VERIFY_TOKEN_HOURS": self.mail.email_verify_token_hours,
            "PASSWORD_RESET_TOKEN_MINUTES": self.mail.password_reset_token_minutes,
            "REQUIRE_VERIFIED_EMAIL": self.mail.require_verified_email,
            # Organisations
            "INVITATION_TTL_DAYS": self.orgs.invitation_ttl_days,
            "INVITATION_PATH": self.orgs.invitation_path,
            "INVITATION_SEND_LIMIT": limits.invitation_send,
            # API keys
            "API_KEYS_MAX": self.api_keys.max_keys,
            # Operators
            "FIRST_SUPERUSER_EMAIL": self.admin.first_superuser_email,
            "FIRST_SUPERUSER_PASSWORD": self.admin.first_superuser_password,
            # Background work
            "SWEEP_INTERVAL_SECONDS": self.worker.sweep_interval_seconds,
            # Rate limits (flask-limiter's names)
            "RATELIMIT_ENABLED": limits.enabled,
            "RATELIMIT_STORAGE_URI": limits.storage_uri or redis.url or "memory://",
            "RATELIMIT_DEFAULT": limits.default,
            "RATELIMIT_LOGIN_IP": limits.login_ip,
            "RATELIMIT_LOGIN_ACCOUNT": limits.login_account,
            "RATELIMIT_REGISTER_IP": limits.register_ip,
            "RATELIMIT_REFRESH_IP": limits.refresh_ip,
            "RATELIMIT_PASSWORD_RESET_IP": limits.password_reset_ip,
            "RATELIMIT_PASSWORD_RESET_ACCOUNT": limits.password_reset_account,
            "RATELIMIT_EMAIL_SEND": limits.email_send,
            "RATELIMIT_HEADERS_ENABLED": True,
            # Redis trouble must not fail requests: fall back to per-process counting.
            "RATELIMIT_SWALLOW_ERRORS": True,
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
            "RATELIMIT_STORAGE_OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
            # Observability
            "LOG_LEVEL": observability.log_level,
            "METRICS_TOKEN": observability.metrics_token,
            "SENTRY_DSN": observability.sentry_dsn,
            "SENTRY_TRACES_SAMPLE_RATE": observability.sentry_traces_sample_rate,
            # OpenAPI documents (flask-smorest's names)
            "API_TITLE": app.name,
            "API_VERSION": app.version,
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/",
            "OPENAPI_JSON_PATH": "openapi.json",
            "OPENAPI_SWAGGER_UI_PATH": "/docs",
            "OPENAPI_SWAGGER_UI_URL": docs.swagger_ui_url,
            "OPENAPI_REDOC_PATH": "/redoc",
            "OPENAPI_REDOC_URL": docs.redoc_url,
        }
