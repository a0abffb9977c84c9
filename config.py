"""Every setting of the app, grouped by concern, read from a mapping of environment variables.

``Config.from_env()`` reads the process environment (with a ``.env`` file in the project root
underneath it: real variables win); ``Config.from_env({...})`` reads any mapping, which is how
tests and scripts build an app without touching ``os.environ``. Each group is a
pydantic-settings class whose field aliases are the variable names; an empty value counts as
unset. ``APP_ENV`` (development, testing, production) picks the environment's defaults and checks.
gunicorn.conf.py reads its settings from here too (``ServerSettings``).
"""
import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

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
    """A group of settings read only from the mapping given to it (never from os.environ).

    Each group's docstring (a title line, then what the group is for) and each field's
    ``description`` are the documentation's configuration page (``make docs``), so every field
    needs one; ``json_schema_extra={"shown_default": ...}`` gives the default as the page shows
    it where the field's own (None, a computed value) would mislead."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **other_sources):
        return (init_settings,)


def shown_default(text):
    """The default as the configuration page shows it (markdown), for a computed one."""
    return {"shown_default": text}


class AppSettings(Settings):
    """App

    The environment, the app's name, and what reaches it over HTTP."""

    env: Literal["development", "testing", "production"] = Field(
        "development", alias="APP_ENV",
        description="`development`, `testing` or `production`: picks the environment's defaults and checks. "
        "Production refuses to start with a missing or short `SECRET_KEY` or with `DEBUG` on, naming the variable.",
    )
    name: str = Field("saas", alias="APP_NAME", description="Shown at `/` and in the OpenAPI document.")
    version: str = Field("1.0.0", alias="APP_VERSION", description="Shown at `/` and in the OpenAPI document.")
    debug: bool = Field(False, alias="DEBUG", description="Flask debug mode (never in production).")
    secret_key: str | None = Field(
        None, alias="SECRET_KEY",
        description="Signs the tokens (HS256): 32+ random bytes, required in production. Make one with "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
        json_schema_extra=shown_default("a development-only key"),
    )
    frontend_url: str = Field(
        "http://localhost:3000", alias="FRONTEND_URL",
        description="Default target of the Stripe redirects, and the base of the links in mail; its origin is allowed.",
    )
    allowed_origins: CommaList = Field(
        ["http://localhost:3000", "http://localhost:8000"], alias="ALLOWED_ORIGINS",
        description="Comma-separated CORS origins (never with credentials), also the origins redirect URLs may point at.",
    )
    max_content_length: int = Field(
        1024 * 1024, alias="MAX_CONTENT_LENGTH", ge=1,
        description="Largest request body in bytes (larger: a JSON 413).",
    )
    proxy_fix_hops: int = Field(
        0, alias="PROXY_FIX_HOPS", ge=0,
        description="Number of trusted proxies in front that append to `X-Forwarded-For` (1 behind the project's "
        "nginx): the client address, scheme and host are taken from that position. 0: these headers are ignored.",
    )
    public_api_url: str | None = Field(
        None, alias="PUBLIC_API_URL",
        description="The API's own public base URL, e.g. `https://api.example.com`: the social-login callback URLs "
        "(`<PUBLIC_API_URL>/api/v1/auth/oauth/<provider>/callback`, which each provider must have registered "
        "exactly) are built on it. Unset: the request's scheme and host, as `PROXY_FIX_HOPS` lets the proxy set "
        "them; set it in production, so no `Host` header can change them.",
    )


class DatabaseSettings(Settings):
    """Database

    PostgreSQL in production; a SQLite file for a first run."""

    url: str = Field(
        f"sqlite:///{BASE_DIR / 'instance' / 'saas.db'}", alias="DATABASE_URL",
        description="`postgres://`, `postgresql://`, `postgresql+psycopg2://`, `postgresql+psycopg://` and "
        "`postgresql+asyncpg://` are all accepted and drive psycopg2, e.g. "
        "`postgresql://USER:PASSWORD@localhost:5432/saas`.",
        json_schema_extra=shown_default("`sqlite:///instance/saas.db`"),
    )
    pool_size: int = Field(
        10, alias="DB_POOL_SIZE", ge=1,
        description="SQLAlchemy pool size per gunicorn worker (PostgreSQL only; `pool_pre_ping` is always on).",
    )
    max_overflow: int = Field(
        10, alias="DB_MAX_OVERFLOW", ge=0, description="Connections the pool may open beyond `DB_POOL_SIZE`."
    )
    pool_timeout: float = Field(
        10, alias="DB_POOL_TIMEOUT", gt=0, description="Seconds to wait for a pooled connection."
    )
    pool_recycle: int = Field(
        1800, alias="DB_POOL_RECYCLE", description="Seconds after which a pooled connection is replaced."
    )
    connect_timeout: int = Field(
        5, alias="DB_CONNECT_TIMEOUT", ge=1, description="Seconds to wait when connecting to PostgreSQL."
    )
    prepared_statements: bool = Field(
        True, alias="DB_PREPARED_STATEMENTS",
        description="The gate's two lookups (session, API key) are prepared once per connection "
        "(`saas/core/database.py`): PostgreSQL then spends a third of the CPU on them. Set `false` behind "
        "PgBouncer in transaction mode, where a connection's prepared statements do not follow a client.",
    )


class RedisSettings(Settings):
    """Redis

    Jobs, rate limits and locks; none of it authoritative (see Scaling out)."""

    url: str | None = Field(
        None, alias="REDIS_URL",
        description="Redis for RQ jobs, rate limits and metrics, e.g. `redis://localhost:6379/0`. Unset: no Redis; "
        "jobs run in the server after each response and rate limits count in process memory.",
    )
    socket_timeout: float = Field(
        2.0, alias="REDIS_SOCKET_TIMEOUT", gt=0, description="Seconds before a Redis call gives up."
    )


class TokenSettings(Settings):
    """Tokens and passwords"""

    access_minutes: int = Field(
        30, alias="ACCESS_TOKEN_EXPIRE_MINUTES", ge=1, description="Access token lifetime, in minutes."
    )
    refresh_days: int = Field(
        7, alias="REFRESH_TOKEN_EXPIRE_DAYS", ge=1, description="Refresh token (session) lifetime, in days."
    )
    bcrypt_rounds: int | None = Field(
        None, alias="BCRYPT_ROUNDS", ge=4, le=31,
        description="bcrypt cost, 4 to 31 (lower under testing: strength is not under test there, speed is).",
        json_schema_extra=shown_default("`12` (`4` under `APP_ENV=testing`)"),
    )


class StripeSettings(Settings):
    """Stripe

    Billing: the keys, the plans, and how long a Stripe call may take."""

    secret_key: str | None = Field(
        None, alias="STRIPE_SECRET_KEY", description="Stripe API key. Unset: the billing endpoints answer 503."
    )
    publishable_key: str | None = Field(
        None, alias="STRIPE_PUBLISHABLE_KEY", description="For your front end; the API does not use it."
    )
    webhook_secret: str | None = Field(
        None, alias="STRIPE_WEBHOOK_SECRET",
        description="The `whsec_...` signing secret of your webhook endpoint; while you roll it, both secrets, "
        "comma-separated.",
    )
    webhook_tolerance: int = Field(
        300, alias="STRIPE_WEBHOOK_TOLERANCE", ge=1, description="Seconds a webhook signature stays valid."
    )
    api_base: str = Field(
        "https://api.stripe.com", alias="STRIPE_API_BASE",
        description="Where the Stripe SDK sends its requests (the tests point it at a fake server).",
    )
    timeout: float = Field(
        10.0, alias="STRIPE_TIMEOUT", gt=0,
        description="Seconds one Stripe call may take in all, its retries of network errors included; then a JSON 503.",
    )
    max_network_retries: int = Field(
        2, alias="STRIPE_MAX_NETWORK_RETRIES", ge=0,
        description="Retries of a Stripe call's network errors, within `STRIPE_TIMEOUT`.",
    )
    plans: Plans = Field(
        {}, alias="STRIPE_PLANS",
        description="The plans checkout accepts: comma-separated `plan:price_id` pairs, e.g. "
        "`pro:price_123,team:price_456`.",
    )
    past_due_grace_days: int = Field(
        7, alias="BILLING_PAST_DUE_GRACE_DAYS", ge=0, description="Days a `past_due` subscription keeps its plan."
    )
    seat_plans: CommaList = Field(
        [], alias="STRIPE_SEAT_PLANS",
        description="Plans billed per seat (member), e.g. `team`: their subscription's quantity follows the "
        "organization's member count (see [Organizations and roles](api/organizations.md#seats)).",
    )
    max_concurrent: int = Field(
        3, alias="STRIPE_MAX_CONCURRENT", ge=1,
        description="Request threads per gunicorn worker that Stripe calls may hold at once; more is a JSON 503 "
        "with `Retry-After`, at once (a hung Stripe then cannot take every thread).",
    )
    meter_event_name: str | None = Field(
        None, alias="STRIPE_METER_EVENT_NAME",
        description="The Stripe Billing meter token usage is reported to. Unset: usage is not billed.",
    )


class AiSettings(Settings):
    """AI provider and quotas"""

    api_base: str = Field(
        "https://api.openai.com/v1", alias="AI_API_BASE",
        description="Any OpenAI-compatible `/v1/chat/completions` provider: OpenAI, OpenRouter, vLLM, Ollama.",
    )
    api_key: str | None = Field(
        None, alias="AI_API_KEY",
        description="The provider's key, sent as a Bearer token. Unset: no key sent (local providers such as Ollama).",
    )
    model: str = Field("gpt-4o-mini", alias="AI_MODEL", description="The default model.")
    allowed_models: CommaList = Field(
        [], alias="AI_ALLOWED_MODELS",
        description="Comma-separated models callers may ask for besides `AI_MODEL`; others are refused (they cost more).",
    )
    timeout: float = Field(60.0, alias="AI_TIMEOUT", gt=0, description="Per-read timeout, in seconds.")
    max_retries: int = Field(
        2, alias="AI_MAX_RETRIES", ge=0, description="Retries of connection errors and 429/5xx answers."
    )
    max_tokens: int = Field(
        1024, alias="AI_MAX_TOKENS", ge=1,
        description="The default and the ceiling of `max_tokens`; also what a call reserves of the quota.",
    )
    plan_quotas: Quotas = Field(
        {"free": 20000, "pro": 2000000}, alias="PLAN_QUOTAS",
        description="Monthly tokens per plan, comma-separated `plan:tokens`; unknown plans get `free`'s.",
    )
    max_concurrent: int = Field(
        4, alias="AI_MAX_CONCURRENT", ge=1,
        description="Chats being answered plus AI jobs queued or running, per user, at once; more is a 429.",
    )
    max_concurrent_calls: int = Field(
        3, alias="AI_MAX_CONCURRENT_CALLS", ge=1,
        description="Request threads per gunicorn worker that calls to the provider may hold at once (a stream "
        "until it ends); more is a JSON 503 with `Retry-After`.",
    )


class RateLimitSettings(Settings):
    """Rate limits

    flask-limiter's limits (see [Security model](security.md#rate-limits))."""

    enabled: bool = Field(
        True, alias="RATELIMIT_ENABLED",
        description="`false` turns every rate limit off (e.g. behind a gateway that limits).",
    )
    storage_uri: str | None = Field(
        None, alias="RATELIMIT_STORAGE_URI", description="flask-limiter storage.",
        json_schema_extra=shown_default("`REDIS_URL`, else `memory://`"),
    )
    default: RateLimit = Field(
        "600 per minute", alias="RATELIMIT_DEFAULT",
        description="Every endpoint, per caller once the gate has identified them (per address before, and for "
        "callers whose credentials fail): a user's sessions and personal API keys share the user's budget, an "
        "organization's keys the organization's.",
    )
    login_ip: RateLimit = Field(
        "30 per minute", alias="RATELIMIT_LOGIN_IP", description="Failed logins per client address."
    )
    login_account: RateLimit = Field(
        "10 per 15 minutes", alias="RATELIMIT_LOGIN_ACCOUNT",
        description="Failed logins per account (known or not), from any address.",
    )
    register_ip: RateLimit = Field("100 per hour", alias="RATELIMIT_REGISTER_IP", description="Registrations per address.")
    refresh_ip: RateLimit = Field("60 per minute", alias="RATELIMIT_REFRESH_IP", description="Token refreshes per address.")
    password_reset_ip: RateLimit = Field(
        "20 per hour", alias="RATELIMIT_PASSWORD_RESET_IP", description="Password reset requests per address."
    )
    password_reset_account: RateLimit = Field(
        "5 per hour", alias="RATELIMIT_PASSWORD_RESET_ACCOUNT",
        description="Password reset requests per email asked about (every request counts).",
    )
    email_send: RateLimit = Field(
        "5 per hour", alias="RATELIMIT_EMAIL_SEND",
        description="Messages a signed-in user can have sent: new verification links, email changes.",
    )
    invitation_send: RateLimit = Field(
        "20/hour", alias="INVITATION_SEND_LIMIT",
        description="Invitations sent, per sender (across their organizations) and per organization (whichever of "
        "its admins sends); one address gets at most 3 a day from one organization, always.",
    )
    oauth_ip: RateLimit = Field(
        "60 per minute", alias="RATELIMIT_OAUTH_IP",
        description="Requests per client address to each step of a social login: the authorize redirect, the "
        "provider's callback, and the one-time code's exchange.",
    )


class MailSettings(Settings):
    """Mail

    Where the mail goes, and the links in it (see [Authentication](api/authentication.md#email))."""

    backend: Literal["smtp", "console"] | None = Field(
        None, alias="MAIL_BACKEND",
        description="`smtp`, or `console` (the message, links included, written to the log; nothing sent).",
        json_schema_extra=shown_default("`smtp` if `SMTP_HOST` is set, else `console`"),
    )
    smtp_host: str | None = Field(
        None, alias="SMTP_HOST",
        description="Your SMTP server (docker compose: `mailpit`, port 1025, `SMTP_STARTTLS=false`).",
    )
    smtp_port: int = Field(587, alias="SMTP_PORT", ge=1, le=65535, description="The SMTP server's port.")
    smtp_username: str | None = Field(
        None, alias="SMTP_USERNAME", description="The server's login; set both or neither."
    )
    smtp_password: str | None = Field(
        None, alias="SMTP_PASSWORD", description="The server's password; set both or neither."
    )
    smtp_starttls: bool = Field(
        True, alias="SMTP_STARTTLS",
        description="STARTTLS on a plain connection (587) before anything is sent, required while true.",
    )
    smtp_ssl: bool = Field(
        False, alias="SMTP_SSL", description="Implicit TLS from the first byte (port 465) instead of STARTTLS."
    )
    smtp_timeout: float = Field(10.0, alias="SMTP_TIMEOUT", gt=0, description="Seconds to wait for the server.")
    mail_from: str = Field(
        "saas <no-reply@localhost>", alias="MAIL_FROM", description="The sender of every message."
    )
    email_verify_path: str = Field(
        "/verify-email", alias="EMAIL_VERIFY_PATH",
        description="The front-end page of verification links: `FRONTEND_URL` + path + `?token=...`.",
    )
    password_reset_path: str = Field(
        "/reset-password", alias="PASSWORD_RESET_PATH",
        description="The front-end page of reset links: `FRONTEND_URL` + path + `?token=...`.",
    )
    email_verify_token_hours: int = Field(
        48, alias="EMAIL_VERIFY_TOKEN_HOURS", ge=1,
        description="Hours a verification (or email change) link works.",
    )
    password_reset_token_minutes: int = Field(
        60, alias="PASSWORD_RESET_TOKEN_MINUTES", ge=1, description="Minutes a password reset link works."
    )
    require_verified_email: bool = Field(
        False, alias="REQUIRE_VERIFIED_EMAIL",
        description="`true`: unverified users get a 403 on billing, API keys and AI.",
    )

    @property
    def effective_backend(self):
        return self.backend or ("smtp" if self.smtp_host else "console")


class OrgSettings(Settings):
    """Organizations"""

    invitation_ttl_days: int = Field(
        7, alias="INVITATION_TTL_DAYS", ge=1, le=90, description="Days an invitation link works (1 to 90)."
    )
    invitation_path: str = Field(
        "/invitations", alias="INVITATION_PATH",
        description="The front-end page invitations link to: `FRONTEND_URL` + path + `?token=...`.",
    )


class ApiKeySettings(Settings):
    """API keys"""

    max_keys: int = Field(
        25, alias="API_KEYS_MAX", ge=1,
        description="The most API keys an organization may have (a user's personal keys are their personal "
        "organization's), and the most one user may have made across the organizations they belong to; one "
        "more is a 409.",
    )


class AdminSettings(Settings):
    """Operators

    The first superuser (see [The admin API](operations/admin.md#the-first-superuser))."""

    first_superuser_email: str | None = Field(
        None, alias="FIRST_SUPERUSER_EMAIL",
        description="`flask users ensure-superuser` (run after `flask db upgrade` by compose's and Kubernetes' "
        "migrate steps) creates this superuser when the address has no account; an existing account is made "
        "superuser, its password never changed, only when it is active and its address verified (otherwise "
        "the command exits with status 3, which the migrate steps tolerate). Unset: nothing is done.",
    )
    first_superuser_password: str | None = Field(
        None, alias="FIRST_SUPERUSER_PASSWORD",
        description="Its password (registration's rules), used only when the account is created.",
    )


class MfaSettings(Settings):
    """Two-factor authentication

    See [two-factor authentication](api/authentication.md#two-factor-authentication)."""

    token_seconds: int = Field(
        300, alias="MFA_TOKEN_SECONDS", ge=30, le=3600,
        description="Seconds a login waits for its second factor: how long the `mfa_token` of "
        "`POST /api/v1/auth/login` works (30 to 3600).",
    )
    encryption_keys: CommaList = Field(
        [], alias="MFA_ENCRYPTION_KEY",
        description="Keys of the secrets kept encrypted at rest (TOTP seeds, SSO client secrets, webhook signing "
        "secrets): comma-separated "
        "random strings of 32+ bytes; the first encrypts, all decrypt. Rotate: put a new key first, run "
        "`flask users reencrypt-secrets`, then drop the old one.",
        json_schema_extra=shown_default("derived from `SECRET_KEY` (which then must never rotate)"),
    )
    admin_require_mfa: bool | None = Field(
        None, alias="ADMIN_REQUIRE_MFA",
        description="The admin API admits only login sessions that passed two-factor; others get 403 with the "
        "reason `mfa_required`.",
        json_schema_extra=shown_default("`true` under `APP_ENV=production`, else `false`"),
    )


OAUTH_PROVIDER_NAMES = ("google", "github", "microsoft", "oidc")
# Microsoft's multi-tenant authorities; any other tenant is a directory (tenant) id.
MICROSOFT_TENANTS = ("common", "organizations", "consumers")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _client_id(name, label):
    return Field(None, alias=f"OAUTH_{name.upper()}_CLIENT_ID", description=f"The client (application) id {label} gave this app.")


def _client_secret(name, label):
    return Field(None, alias=f"OAUTH_{name.upper()}_CLIENT_SECRET", description=f"The client secret {label} gave this app.")


class OAuthSettings(Settings):
    """Social login

    Sign in with Google, GitHub, Microsoft or any OpenID Connect provider (see
    [Social login](api/authentication.md#social-login))."""

    providers: CommaList = Field(
        [], alias="OAUTH_PROVIDERS",
        description="Comma-separated providers to offer, any of `google`, `github`, `microsoft`, `oidc`; each needs its "
        "`OAUTH_<NAME>_CLIENT_ID` and `OAUTH_<NAME>_CLIENT_SECRET`. Empty: social login is off.",
    )
    google_client_id: str | None = _client_id("google", "Google")
    google_client_secret: str | None = _client_secret("google", "Google")
    github_client_id: str | None = _client_id("github", "GitHub")
    github_client_secret: str | None = _client_secret("github", "GitHub")
    github_base_url: str = Field(
        "https://github.com", alias="OAUTH_GITHUB_BASE_URL",
        description="GitHub's web address (the sign-in pages): your GitHub Enterprise Server's for it.",
    )
    github_api_url: str = Field(
        "https://api.github.com", alias="OAUTH_GITHUB_API_URL",
        description="GitHub's REST API (`https://HOST/api/v3` for GitHub Enterprise Server).",
    )
    microsoft_client_id: str | None = _client_id("microsoft", "Microsoft Entra ID")
    microsoft_client_secret: str | None = _client_secret("microsoft", "Microsoft Entra ID")
    microsoft_tenant: str = Field(
        "common", alias="OAUTH_MICROSOFT_TENANT",
        description="Who may sign in with Microsoft: `common` (work, school and personal accounts), `organizations` "
        "(work and school), `consumers` (personal), or one directory's tenant id (a GUID).",
    )
    oidc_client_id: str | None = _client_id("oidc", "the provider")
    oidc_client_secret: str | None = _client_secret("oidc", "the provider")
    oidc_issuer: str | None = Field(
        None, alias="OAUTH_OIDC_ISSUER",
        description="The `oidc` provider's issuer URL, exactly as its discovery document "
        "(`<issuer>/.well-known/openid-configuration`) names it, e.g. `https://sso.example.com/realms/acme` "
        "(Keycloak, Okta, Auth0, Authentik, Zitadel...).",
    )
    oidc_display_name: str = Field(
        "Single sign-on", alias="OAUTH_OIDC_DISPLAY_NAME", description="The `oidc` provider's name on the sign-in page."
    )
    oidc_scopes: str = Field(
        "openid email profile", alias="OAUTH_OIDC_SCOPES",
        description="The scopes asked of the `oidc` provider, space-separated; `openid` and `email` are needed.",
    )
    frontend_callback_path: str = Field(
        "/oauth/callback", alias="OAUTH_FRONTEND_CALLBACK_PATH",
        description="The front-end page a social login ends on: `FRONTEND_URL` + path + `?code=...` (or "
        "`?link_code=...`, or `?error=...`).",
    )
    timeout: float = Field(
        10.0, alias="OAUTH_TIMEOUT", gt=0,
        description="Seconds each call to a provider (discovery, keys, code exchange, GitHub's API) may take.",
    )

    def client(self, name):
        """``(client id, client secret)`` of provider ``name``."""
        return getattr(self, f"{name}_client_id"), getattr(self, f"{name}_client_secret")


class WorkerSettings(Settings):
    """Background work"""

    sweep_interval_seconds: int = Field(
        60, alias="SWEEP_INTERVAL_SECONDS", ge=5,
        description="Seconds between the worker's repair sweeps (`saas/sweeps.py`) and its own RQ housekeeping; "
        "at least 5.",
    )


def parse_retry_schedule(raw):
    """``5,300,1800`` -> ``[5, 300, 1800]``: seconds before each retry."""
    if not isinstance(raw, str):
        return raw
    waits = _split_list(raw)
    for wait in waits:
        if not wait.isdigit() or int(wait) < 1:
            raise ValueError(f"WEBHOOK_RETRY_SCHEDULE entry {wait!r} is not a whole number of seconds (1 or more)")
    return [int(wait) for wait in waits]


RetrySchedule = Annotated[list[int], BeforeValidator(parse_retry_schedule)]


def parse_nameservers(raw):
    """``1.1.1.1,127.0.0.1:5353,[::1]:53`` -> ``[("1.1.1.1", 53), ("127.0.0.1", 5353), ("::1", 53)]``."""
    if not isinstance(raw, str):
        return raw
    servers = []
    for entry in _split_list(raw):
        if entry.startswith("["):
            address, _, port = entry[1:].partition("]")
            port = port.removeprefix(":")
        elif entry.count(":") == 1:
            address, port = entry.split(":")
        else:
            address, port = entry, ""
        try:
            ipaddress.ip_address(address)  # a name server is an address: naming one would need DNS
        except ValueError:
            raise ValueError(f"DNS_NAMESERVERS entry {entry!r} is not an IP address (host or host:port)") from None
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"DNS_NAMESERVERS entry {entry!r} has no valid port")
        servers.append((address, int(port) if port else 53))
    return servers


Nameservers = Annotated[list[tuple[str, int]], BeforeValidator(parse_nameservers)]


class WebhookSettings(Settings):
    """Outbound webhooks

    Events delivered to the organizations' endpoints (see [Outbound webhooks](api/webhooks.md))."""

    timeout_seconds: int = Field(
        10, alias="WEBHOOK_TIMEOUT_SECONDS", ge=1, le=60,
        description="Seconds one delivery may take in all (resolving the host, connecting, sending, the answer): "
        "a 2xx within it is a success, and a slow receiver holds a worker no longer (1 to 60).",
    )
    retry_schedule: RetrySchedule = Field(
        [5, 300, 1800, 7200, 18000, 36000, 36000], alias="WEBHOOK_RETRY_SCHEDULE",
        description="Comma-separated seconds to wait before each retry of a failed delivery, each stretched or "
        "shrunk by up to a fifth at random (jitter), on the `low` queue; the default is 5 s, 5 min, 30 min, 2 h, "
        "5 h, 10 h, 10 h (about 28 hours in all). Once it is used up the delivery is `failed`.",
        json_schema_extra=shown_default("`5,300,1800,7200,18000,36000,36000`"),
    )
    secret_overlap_hours: int = Field(
        24, alias="WEBHOOK_SECRET_OVERLAP_HOURS", ge=0,
        description="Hours after a secret rotation during which deliveries are signed with both the new and the "
        "old secret, so receivers can switch without losing an event.",
    )
    disable_after_hours: int = Field(
        72, alias="WEBHOOK_DISABLE_AFTER_HOURS", ge=1,
        description="An endpoint that failed every delivery for this many hours is disabled, and the "
        "organization's owners get a mail (a 410 answer disables it at once).",
    )
    allow_loopback: bool = Field(
        False, alias="WEBHOOKS_ALLOW_LOOPBACK",
        description="`true` (development and tests only): endpoints may be `http://` and on loopback addresses "
        "(127.0.0.0/8, `::1`, `localhost`). Private, link-local, multicast, reserved and metadata addresses are "
        "refused whatever this says.",
    )


class DnsSettings(Settings):
    """Name resolution

    The DNS servers the app asks itself (webhook deliveries resolve their host and check every address)."""

    nameservers: Nameservers = Field(
        [], alias="DNS_NAMESERVERS",
        description="Comma-separated DNS servers, each an address with an optional port (`host` or `host:port`; "
        "an IPv6 address with a port goes in brackets), e.g. `1.1.1.1,8.8.8.8:53`.",
        json_schema_extra=shown_default("the system's (`/etc/resolv.conf`)"),
    )


class ObservabilitySettings(Settings):
    """Observability"""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", alias="LOG_LEVEL", description="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`; JSON lines on stdout."
    )
    metrics_token: str | None = Field(
        None, alias="METRICS_TOKEN",
        description="Enables `/metrics`, readable with `Authorization: Bearer <token>`. Unset: `/metrics` is off.",
    )
    sentry_dsn: str | None = Field(None, alias="SENTRY_DSN", description="Error reporting to Sentry when set.")
    sentry_traces_sample_rate: float = Field(
        0.0, alias="SENTRY_TRACES_SAMPLE_RATE", ge=0, le=1, description="Share of requests traced by Sentry, 0 to 1."
    )


class DocsSettings(Settings):
    """API reference pages

    Where `/docs` (Swagger UI) and `/redoc` load their scripts from: the app's own copies
    (`saas/web/docs.py`) unless a CDN URL is set."""

    swagger_ui_url: str = Field(
        "/docs/assets/swagger-ui/", alias="SWAGGER_UI_URL",
        description="A directory URL ending in `/` holding `swagger-ui-bundle.js` and `swagger-ui.css`; set a CDN "
        "URL such as `https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/` to load them from there, and the "
        "page's Content-Security-Policy allows its origin.",
    )
    redoc_url: str = Field(
        "/docs/assets/redoc/redoc.standalone.js", alias="REDOC_URL",
        description="Where `/redoc` loads ReDoc from; a CDN URL is allowed by that page's policy likewise.",
    )


def _cpus():
    # Respect CPU pinning (containers, taskset) instead of the host's core count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class ServerSettings(Settings):
    """gunicorn

    gunicorn's settings: `gunicorn.conf.py` reads them from here."""

    port: int = Field(
        8000, alias="PORT", description="Port to listen on, on all addresses, unless `GUNICORN_BIND` is set."
    )
    bind: str | None = Field(
        None, alias="GUNICORN_BIND", description="Full bind address, e.g. `127.0.0.1:8000`.",
        json_schema_extra=shown_default("`0.0.0.0:$PORT`"),
    )
    workers: int = Field(
        default_factory=lambda: max(2, _cpus()), alias="GUNICORN_WORKERS", ge=1,
        description="Worker processes: one per core, each with `GUNICORN_THREADS` threads, measured best for this "
        "app (`bench/RESULTS.md`). Under a CPU limit (Kubernetes) set it to the container's CPU: the default "
        "counts the cores the process may run on, which are the node's.",
        json_schema_extra=shown_default("the CPU cores this process may use, at least 2"),
    )
    threads: int = Field(8, alias="GUNICORN_THREADS", ge=1, description="Threads per worker (`gthread`).")
    timeout: int = Field(
        30, alias="GUNICORN_TIMEOUT", ge=1, description="Seconds a request may take before its worker is restarted."
    )
    graceful_timeout: int = Field(
        30, alias="GUNICORN_GRACEFUL_TIMEOUT", ge=1,
        description="Seconds workers get to finish in-flight requests on shutdown.",
    )
    keepalive: int = Field(
        5, alias="GUNICORN_KEEPALIVE", ge=0, description="Seconds an idle keep-alive connection stays open."
    )
    max_requests: int = Field(
        0, alias="GUNICORN_MAX_REQUESTS", ge=0,
        description="Restart a worker after this many requests (bounds slow memory leaks); 0: never.",
    )
    max_requests_jitter: int = Field(
        0, alias="GUNICORN_MAX_REQUESTS_JITTER", ge=0,
        description="Up to this many requests more, at random, so workers do not all restart at once.",
    )
    accesslog: str | None = Field(
        None, alias="GUNICORN_ACCESSLOG",
        description="gunicorn's access log (`-` for stdout). Unset: none; the app logs every request itself.",
    )
    loglevel: str = Field("info", alias="GUNICORN_LOGLEVEL", description="gunicorn's own log level.")
    forwarded_allow_ips: str = Field(
        "127.0.0.1", alias="FORWARDED_ALLOW_IPS",
        description="Comma-separated proxy addresses gunicorn trusts for `X-Forwarded-*`.",
    )

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
        self.mfa = _build(MfaSettings, values)
        self.oauth = _build(OAuthSettings, values)
        self.worker = _build(WorkerSettings, values)
        self.webhooks = _build(WebhookSettings, values)
        self.dns = _build(DnsSettings, values)
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
        self.validate_oauth()
        for key in self.mfa.encryption_keys:
            if len(key.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(f"MFA_ENCRYPTION_KEY: each key needs at least {MIN_SECRET_BYTES} bytes")
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

    def validate_oauth(self):
        """Social-login settings that cannot work; in production, a provider reached over plain HTTP
        (but on loopback) is refused too: its answers decide who logs in."""
        oauth = self.oauth
        for name in oauth.providers:
            if name not in OAUTH_PROVIDER_NAMES:
                raise ConfigError(f"OAUTH_PROVIDERS: unknown provider {name!r} (any of {', '.join(OAUTH_PROVIDER_NAMES)})")
            if not all(oauth.client(name)):
                raise ConfigError(
                    f"OAUTH_PROVIDERS has {name}: set OAUTH_{name.upper()}_CLIENT_ID and OAUTH_{name.upper()}_CLIENT_SECRET"
                )
        urls = {}
        if "oidc" in oauth.providers:
            if not oauth.oidc_issuer:
                raise ConfigError("OAUTH_PROVIDERS has oidc: set OAUTH_OIDC_ISSUER (the provider's issuer URL)")
            if "openid" not in oauth.oidc_scopes.split():
                raise ConfigError("OAUTH_OIDC_SCOPES must include openid")
            urls["OAUTH_OIDC_ISSUER"] = oauth.oidc_issuer
        if "github" in oauth.providers:
            urls.update(OAUTH_GITHUB_BASE_URL=oauth.github_base_url, OAUTH_GITHUB_API_URL=oauth.github_api_url)
        if oauth.microsoft_tenant not in MICROSOFT_TENANTS and not _GUID.match(oauth.microsoft_tenant):
            raise ConfigError(
                "OAUTH_MICROSOFT_TENANT: common, organizations, consumers, or a directory's tenant id (a GUID, "
                "not its domain name)"
            )
        if not oauth.frontend_callback_path.startswith("/"):
            raise ConfigError("OAUTH_FRONTEND_CALLBACK_PATH must start with /")
        for variable, url in urls.items():
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ConfigError(f"{variable} is not an http(s) URL: {url!r}")
            if parts.scheme == "http" and self.env == "production" and parts.hostname not in _LOOPBACK_HOSTS:
                raise ConfigError(f"{variable} must be an https URL in production")

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
            "PUBLIC_API_URL": app.public_api_url.rstrip("/") if app.public_api_url else None,
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
            # Organizations
            "INVITATION_TTL_DAYS": self.orgs.invitation_ttl_days,
            "INVITATION_PATH": self.orgs.invitation_path,
            "INVITATION_SEND_LIMIT": limits.invitation_send,
            # API keys
            "API_KEYS_MAX": self.api_keys.max_keys,
            # Operators
            "FIRST_SUPERUSER_EMAIL": self.admin.first_superuser_email,
            "FIRST_SUPERUSER_PASSWORD": self.admin.first_superuser_password,
            # Two-factor authentication
            "MFA_TOKEN_SECONDS": self.mfa.token_seconds,
            "MFA_ENCRYPTION_KEYS": list(self.mfa.encryption_keys),
            "ADMIN_REQUIRE_MFA": (
                self.env == "production" if self.mfa.admin_require_mfa is None else self.mfa.admin_require_mfa
            ),
            # Social login
            "OAUTH_PROVIDERS": list(dict.fromkeys(self.oauth.providers)),
            "OAUTH_FRONTEND_CALLBACK_PATH": self.oauth.frontend_callback_path,
            # Background work
            "SWEEP_INTERVAL_SECONDS": self.worker.sweep_interval_seconds,
            # Outbound webhooks
            "WEBHOOK_TIMEOUT_SECONDS": self.webhooks.timeout_seconds,
            "WEBHOOK_RETRY_SCHEDULE": list(self.webhooks.retry_schedule),
            "WEBHOOK_SECRET_OVERLAP_HOURS": self.webhooks.secret_overlap_hours,
            "WEBHOOK_DISABLE_AFTER_HOURS": self.webhooks.disable_after_hours,
            "WEBHOOKS_ALLOW_LOOPBACK": self.webhooks.allow_loopback,
            # Name resolution
            "DNS_NAMESERVERS": list(self.dns.nameservers),
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
            "RATELIMIT_OAUTH_IP": limits.oauth_ip,
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
