"""Creating, changing, deleting and exporting user accounts. Other packages react through
``saas.users.events``."""
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.core.database import atomic
from saas.core.emails import lenient_email
from saas.core.errors import Conflict, NotFound, Unauthenticated
from saas.core.time import utcnow
from saas.extensions import db
from saas.mail.service import forget_mail_of, mail_of
from saas.users import events
from saas.users.models import User, deleted_address
from saas.users import mfa
from saas.users.passwords import check_current_password, check_password, hash_password, unusable_password


class EmailTaken(Conflict):
    message = "An account with this email already exists."


class AccountDisabled(Unauthenticated):
    """A deactivated account's credentials (password, token, API key): 401."""

    message = "This account is disabled."


class NoSuchUser(NotFound):
    message = "No such user."


class NotPromotable(Conflict):
    """An existing account that seeding a superuser must not promote: whoever registered the
    address may not be the operator."""

    def __init__(self, reason):
        super().__init__(f"The account is not made a superuser: {reason}.")


@atomic
def create_user(email, password, full_name=None, *, superuser=False, verified=False):
    """Insert the user, with their personal organization (``user_creating``); ``user_registered``
    has billing create the Stripe customer and a verification message go out once this commits
    (unless the address counts as ``verified`` already: an operator's, made from the command line,
    or one a social login's provider vouches for). ``password`` None: an account without a
    password (a social login's), whose owner can set one with a password reset."""
    if password is not None:
        check_password(password, email=email, full_name=full_name)
    user = User(
        email=email, hashed_password=hash_password(password) if password is not None else unusable_password(),
        full_name=full_name, is_superuser=superuser, email_verified=verified,
    )
    db.session.add(user)
    flush_unless_email_taken()
    events.user_creating.send(user)
    events.user_registered.send(user)
    return user


def flush_unless_email_taken():
    """Write the session's changes now; a unique-email violation (another account took the
    address first) is a 409, and the use case rolls back."""
    try:
        db.session.flush()
    except IntegrityError:
        raise EmailTaken() from None


def user_by_email(email):
    user = db.session.scalar(sa.select(User).where(User.email == lenient_email(email)))
    if user is None:
        raise NoSuchUser(f"No user with email {email}.")
    return user


@atomic
def update_profile(user, changes, *, keep_session_id=None):
    """Apply a profile change. A new password needs the current one, and then ends every other
    session of the user and revokes their API keys (``password_changed``): whoever stole the old
    password or a token may have minted some."""
    if "password" in changes:
        check_current_password(user, changes["current_password"])
        mfa.check_second_factor(user, changes.get("code"))
        check_password(changes["password"], email=user.email, full_name=changes.get("full_name", user.full_name))
        user.hashed_password = hash_password(changes["password"])
        user.rotate_security_stamp()  # voids every link mailed for the account until now
        events.password_changed.send(user, keep_session_id=keep_session_id)
    if "full_name" in changes:
        user.full_name = changes["full_name"]
    return user


@atomic
def set_user_active(user, active):
    """Activate or deactivate an account; deactivation ends every session and key at once, and
    voids every link mailed for it."""
    user.is_active = active
    if not active:
        user.rotate_security_stamp()
        events.account_deactivated.send(user)
    return user


@atomic
def make_superuser(user):
    user.is_superuser = True
    return user


@atomic
def delete_account(user, current_password, code=None):
    """Delete the account (the current password, and a second-factor code when two-factor is
    on, needed): every package removes what it holds about the user (``account_deleting``; a
    package may refuse with its error, and nothing happens), then the row is anonymised, not
    deleted, so the usage and billing records kept for accounting still point at it. Billing
    cancels the subscriptions in Stripe once this commits (``account_deleted``)."""
    check_current_password(user, current_password)
    mfa.check_second_factor(user, code)
    events.account_deleting.send(user)
    forget_mail_of(user.id, user.email)
    user.email = deleted_address(user.id)
    user.full_name = None
    user.hashed_password = hash_password(secrets.token_urlsafe(32))  # nobody knows it
    user.is_active = user.is_superuser = user.email_verified = False
    user.rotate_security_stamp()
    user.deleted_at = utcnow()
    events.account_deleted.send(user)


def export_account(user):
    """Everything stored about the user: their profile, and each package's sections."""
    document = {
        "profile": {
            "id": user.id, "email": user.email, "full_name": user.full_name, "is_active": user.is_active,
            "is_superuser": user.is_superuser, "email_verified": user.email_verified,
            "created_at": user.created_at, "updated_at": user.updated_at,
        },
        "mail": mail_of(user.id),
        "two_factor": mfa.export(user),
    }
    for _, sections in events.account_export.send(user):
        document.update(sections or {})
    return _jsonable(document)


def _jsonable(value):
    """Dates as ISO 8601 strings, all the way down."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value.isoformat() if isinstance(value, datetime) else value


@atomic
def create_superuser(email, password):
    """``(user, created)``: a new active superuser with a verified address and this password
    (registration's rules); or the existing account of ``email`` made superuser, its password
    left as it is, but only when it is active and its address verified (and it was not
    deleted): anyone may register an address, only its owner can verify it. Raises
    ``NotPromotable`` otherwise, changing nothing."""
    existing = db.session.scalar(sa.select(User).where(User.email == email))
    if existing is None:
        return create_user(email, password, superuser=True, verified=True), True
    if existing.deleted_at is not None:
        raise NotPromotable("it was deleted")
    if not existing.is_active:
        raise NotPromotable("it is deactivated")
    if not existing.email_verified:
        raise NotPromotable("its address is not verified (its owner can verify it with the mailed link)")
    if not existing.is_superuser:
        make_superuser(existing)
    return existing, False
