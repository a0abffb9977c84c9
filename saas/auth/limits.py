"""Rate limits on the endpoints attackers hammer; values come from config (RATELIMIT_*).

Failed logins count per IP and per account, so neither one address nor a botnet spread over
many addresses can guess one account's password at speed. Only failures are counted.

Counters live in RATELIMIT_STORAGE_URI (Redis). When it cannot be reached the limiter fails
open to per-process memory (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED, RATELIMIT_SWALLOW_ERRORS in
create_app): requests are still served and still limited, but per process rather than for the
whole deployment, until Redis answers again (flask-limiter re-checks with backoff).
"""
from flask import current_app, request
from werkzeug.exceptions import HTTPException

from saas.extensions import limiter
from saas.web.requests import client_ip


def _configured(name):
    return lambda: current_app.config[name]


def _failed(response):
    return response.status_code == 401


def login_account_key():
    """The account a login attempt targets, read leniently (validation happens later).

    Never raises: flask-limiter takes any error here for a storage outage and would drop to
    per-process memory. An unreadable body (too large, say) is rejected by the view anyway.
    """
    try:
        if request.mimetype == "application/json":
            body = request.get_json(silent=True)
            email = body.get("email") if isinstance(body, dict) else None
        else:
            email = request.form.get("username")
    except HTTPException:
        email = None
    return f"login-account:{str(email or '').strip().lower()}"


login_ip_limit = limiter.limit(
    _configured("RATELIMIT_LOGIN_IP"), key_func=client_ip, deduct_when=_failed, scope="login-ip"
)
login_account_limit = limiter.limit(
    _configured("RATELIMIT_LOGIN_ACCOUNT"),
    key_func=login_account_key,
    deduct_when=_failed,
    scope="login-account",
)
register_ip_limit = limiter.limit(_configured("RATELIMIT_REGISTER_IP"), key_func=client_ip)
refresh_ip_limit = limiter.limit(_configured("RATELIMIT_REFRESH_IP"), key_func=client_ip)
