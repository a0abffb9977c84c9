"""Rate limits on the endpoints attackers hammer; values come from config (RATELIMIT_*).

Failed logins count per IP and per account, so neither one address nor a botnet spread over
many addresses can guess one account's password, or its second-factor codes, at speed. Only
failures are counted.

Counters live in RATELIMIT_STORAGE_URI (Redis). When it cannot be reached the limiter fails
open to per-process memory (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED, RATELIMIT_SWALLOW_ERRORS in
create_app): requests are still served and still limited, but per process rather than for the
whole deployment, until Redis answers again (flask-limiter re-checks with backoff).
"""
import hashlib

from flask import current_app, request
from limits import parse_many

from saas.auth.service import user_of_pending_login
from saas.extensions import limiter
from saas.core.emails import lenient_email
from saas.web.requests import client_ip_key, never_raises

ACCOUNT_SCOPE = "login-account"
RESET_SCOPE = "password-reset-account"
MFA_VERIFY_ENDPOINT = "auth.verify_second_factor"


def _configured(name):
    return lambda: current_app.config[name]


def _failed(response):
    return response.status_code == 401


def account_key(email, scope=ACCOUNT_SCOPE):
    """The counter of one account: its normalised address, hashed (addresses stay out of Redis
    and of the limiter's log lines)."""
    digest = hashlib.sha256(lenient_email(str(email or "")).encode("utf-8")).hexdigest()
    return f"{scope}:{digest[:32]}"


@never_raises(fallback=lambda: f"{ACCOUNT_SCOPE}:unreadable")
def login_account_key():
    """The account a login attempt targets, whatever the body's media type (JSON, any
    ``application/*+json``, or the OAuth2 form); read leniently, validation happens later. For
    the second-factor step, the account of its pending login (wrong codes count like wrong
    passwords)."""
    if request.endpoint == MFA_VERIFY_ENDPOINT:
        body = request.get_json(silent=True)
        token = body.get("mfa_token") if isinstance(body, dict) else None
        return account_key(user_of_pending_login(token) if isinstance(token, str) else None)
    if request.is_json:
        body = request.get_json(silent=True)
        email = body.get("email") if isinstance(body, dict) else None
    else:
        email = request.form.get("username")
    return account_key(email)


@never_raises(fallback=lambda: f"{RESET_SCOPE}:unreadable")
def password_reset_account_key():
    """The address a password reset asks about, whether or not an account has it."""
    body = request.get_json(silent=True)
    return account_key(body.get("email") if isinstance(body, dict) else None, RESET_SCOPE)


def unlock_account(email):
    """Forget an account's failed logins, so it may try again at once (support's `flask auth
    unlock`). Returns how many counters were cleared."""
    key = account_key(email)
    cleared = 0
    for item in parse_many(current_app.config["RATELIMIT_LOGIN_ACCOUNT"]):
        limiter.limiter.clear(item, key, ACCOUNT_SCOPE)
        cleared += 1
    return cleared


login_ip_limit = limiter.limit(
    _configured("RATELIMIT_LOGIN_IP"), key_func=client_ip_key, deduct_when=_failed, scope="login-ip"
)
# One counter per account for the password and the second-factor steps (a shared limit: its
# counters are filed under the scope alone, not "<endpoint>:<scope>").
login_account_limit = limiter.shared_limit(
    _configured("RATELIMIT_LOGIN_ACCOUNT"),
    scope=ACCOUNT_SCOPE,
    key_func=login_account_key,
    deduct_when=_failed,
)
register_ip_limit = limiter.limit(_configured("RATELIMIT_REGISTER_IP"), key_func=client_ip_key)
refresh_ip_limit = limiter.limit(_configured("RATELIMIT_REFRESH_IP"), key_func=client_ip_key)
# Every request counts, found account or not: a limit that counted only real accounts would
# tell which addresses have one.
password_reset_ip_limit = limiter.limit(
    _configured("RATELIMIT_PASSWORD_RESET_IP"), key_func=client_ip_key, scope="password-reset-ip"
)
password_reset_account_limit = limiter.limit(
    _configured("RATELIMIT_PASSWORD_RESET_ACCOUNT"), key_func=password_reset_account_key, scope=RESET_SCOPE
)
