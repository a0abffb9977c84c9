"""Password reset by mail: ask for a link, then set a new password with it.

Asking answers the same, at the same speed, whether or not the account exists: the route only
queues ``request_password_reset``, and the lookup happens in the job.
"""
from flask import current_app
from redis.exceptions import RedisError

from saas.core.errors import ServiceUnavailable
from saas.core.queue import HIGH, enqueue, job_app_context
from saas.extensions import db
from saas.mail import queue_mail, register_link
from saas.users import events
from saas.users.models import User
from saas.users.passwords import check_password, hash_password
from saas.users.service import NoSuchUser, user_by_email
from saas.users.tokens import PASSWORD_RESET, InvalidToken, mint, password_fingerprint, read

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
    """Mail a reset link if an active account has this address; otherwise do nothing."""
    try:
        user = user_by_email(email)
    except NoSuchUser:
        return
    if user.is_active:
        queue_mail("password_reset", user.email, user_id=user.id, link=LINK_RESET, context={"minutes": _minutes()})


def reset_password(token, password):
    """Set a new password with a reset link: every session and API key ends, the address counts
    as verified (the link proved the mailbox), and a notice goes to it."""
    payload = read(PASSWORD_RESET, token, _minutes() * 60)
    user = db.session.get(User, payload["uid"])
    if user is None or not user.is_active or payload.get("fp") != password_fingerprint(user.hashed_password):
        raise InvalidToken("The link was used already, or is no longer valid; ask for a new one.")
    check_password(password, email=user.email, full_name=user.full_name)
    user.hashed_password = hash_password(password)
    user.email_verified = True
    db.session.commit()
    events.password_changed.send(user, keep_session_id=None)
    queue_mail("password_changed", user.email, user_id=user.id)
    return user


def _reset_link(message):
    user = db.session.get(User, message.user_id)
    if user is None or not user.is_active or user.email != message.to_address:
        return None
    token = mint(PASSWORD_RESET, {"uid": user.id, "fp": password_fingerprint(user.hashed_password)})
    config = current_app.config
    return {"link": f"{config['FRONTEND_URL'].rstrip('/')}{config['PASSWORD_RESET_PATH']}?token={token}"}


def connect_mail():
    register_link(LINK_RESET, _reset_link)
