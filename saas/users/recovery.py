"""Password reset by mail: ask for a link, then set a new password with it.

Asking answers the same, at the same speed, whether or not the account exists: the route only
queues ``request_password_reset``, and the lookup happens in the job. The link is bound to the
account's security stamp (``saas.users.tokens``): it works once (the new password gives the
account a new stamp), and any security change of the account (an address change, logout-all...)
voids it.
"""
from flask import current_app
from redis.exceptions import RedisError

from saas.core.database import atomic
from saas.core.errors import ServiceUnavailable
from saas.core.queue import HIGH, enqueue, job_app_context
from saas.extensions import db
from saas.mail import queue_mail, register_link
from saas.users import events
from saas.users.models import User
from saas.users.passwords import check_password, hash_password
from saas.users.service import NoSuchUser, user_by_email
from saas.users.tokens import PASSWORD_RESET, issued_stamp, may_still_mint, mint_link, read_link
from saas.web.blueprint import PASSWORD_METHOD

LINK_RESET = "password-reset"


def _minutes():
    return current_app.config["PASSWORD_RESET_TOKEN_MINUTES"]


def ask_for_password_reset(email):
    """Queue the lookup and, if there is an account, the message; nothing else happens here."""
    try:
        enqueue(request_password_reset, email, queue=HIGH)
    except RedisError:
        raise ServiceUnavailable("Cannot take the request right now; try again shortly.") from None


@job_app_context
def request_password_reset(email):
    """Mail a reset link if an active account has this address and may have a password (no
    organization requires its single sign-on of it); otherwise do nothing."""
    try:
        user = user_by_email(email)
    except NoSuchUser:
        return
    try:  # a rule of another package (SSO required) may refuse this account a password
        events.login_checking.send(user.email, user=user, method=PASSWORD_METHOD)
    except events.LoginRefused:
        return
    if user.is_active:
        queue_mail(
            "password_reset", user.email, user_id=user.id, link=LINK_RESET,
            context={"minutes": _minutes(), "stamp": issued_stamp(user)},
        )


@atomic
def reset_password(token, password):
    """Set a new password with a reset link: every session and API key ends, the address counts
    as verified (the link proved the mailbox), and a notice goes to it."""
    user, _ = read_link(PASSWORD_RESET, token, _minutes() * 60)
    check_password(password, email=user.email, full_name=user.full_name)
    user.hashed_password = hash_password(password)
    user.email_verified = True
    user.rotate_security_stamp()  # this link, and every other one mailed before, is used up
    events.password_changed.send(user, keep_session_id=None)
    queue_mail("password_changed", user.email, user_id=user.id)
    return user


def _reset_link(message):
    user = db.session.get(User, message.user_id)
    if not may_still_mint(user, message.context.get("stamp")) or user.email != message.to_address:
        return None  # the account's address or security changed since the request
    token = mint_link(PASSWORD_RESET, user, issued_stamp(user))
    config = current_app.config
    return {"link": f"{config['FRONTEND_URL'].rstrip('/')}{config['PASSWORD_RESET_PATH']}?token={token}"}


def connect_mail():
    register_link(LINK_RESET, _reset_link)
