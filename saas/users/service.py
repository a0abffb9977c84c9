"""Creating and changing user accounts."""
import logging

from flask_smorest import abort
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from saas.apikeys.service import revoke_all_keys
from saas.auth.passwords import hash_password, verify_password
from saas.auth.service import end_all_sessions
from saas.extensions import db
from saas.users.models import User

log = logging.getLogger(__name__)


def create_user(email, password, full_name=None):
    """Insert the user, then ask a background job to create their Stripe customer.

    The job's failure or a Redis outage never fails the signup: billing endpoints create a
    missing customer on demand, and ``flask billing ensure-customers`` sweeps the rest.
    """
    from saas.billing.jobs import create_stripe_customer_later

    user = User(email=email, hashed_password=hash_password(password), full_name=full_name)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        abort(409, message="An account with this email already exists.")
    try:
        create_stripe_customer_later(user)
    except RedisError:
        log.warning("could not queue Stripe customer creation for user %s; left for the sweeper", user.id)
    return user


def update_user(user, changes, *, current_session_id):
    """Apply a profile change; a new password ends every other session of the user and revokes
    their API keys, since whoever stole the old password or a token may have minted some."""
    if "password" in changes:
        if not verify_password(changes["current_password"], user.hashed_password):
            abort(
                400,
                message="The current password is incorrect.",
                errors={"current_password": ["The current password is incorrect."]},
            )
        user.hashed_password = hash_password(changes["password"])
    if "full_name" in changes:
        user.full_name = changes["full_name"]
    db.session.commit()
    if "password" in changes:
        end_all_sessions(user.id, except_session_id=current_session_id, reason="password-change")
        revoke_all_keys(user.id)
    return user


def set_user_active(user, active):
    """Activate or deactivate an account; deactivation ends every session at once."""
    user.is_active = active
    db.session.commit()
    if not active:
        end_all_sessions(user.id, reason="deactivated")
    return user
