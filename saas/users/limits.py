"""Rate limits of the account endpoints (values from RATELIMIT_*)."""
from flask import current_app

from saas.extensions import limiter


def _wrong_current_password(response):
    return response.status_code == 400


# A stolen access token must not become a fast password oracle through PATCH /users/me: wrong
# current passwords share the failed-login budget's rate, per user (the gate's key).
password_check_limit = limiter.limit(
    lambda: current_app.config["RATELIMIT_LOGIN_ACCOUNT"],
    deduct_when=_wrong_current_password,
    scope="password-check",
    override_defaults=False,
)

# Each of these sends a message (a new verification link, an email change's confirmation and
# notice): a signed-in user cannot make the app mail anyone at speed.
email_send_limit = limiter.limit(
    lambda: current_app.config["RATELIMIT_EMAIL_SEND"], scope="email-send", override_defaults=False
)
