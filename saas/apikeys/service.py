"""Issuing, finding, checking and revoking API keys.

A key reads ``sk_<12 hex>_<43 url-safe chars>``: the first part (the prefix) is stored in clear
to find the row, the whole key only as its SHA-256 hash, compared in constant time.
"""
import hashlib
import hmac
import re
import secrets
from datetime import timedelta

import sqlalchemy as sa

from saas.apikeys.models import ApiKey
from saas.core.database import attached, read_row, write
from saas.core.errors import NotFound, Unauthenticated
from saas.core.time import utcnow
from saas.extensions import db
from saas.users import events
from saas.users.models import User

KEY_PREFIX = "sk_"
PREFIX_LENGTH = len(KEY_PREFIX) + 12
SECRET_BYTES = 32
KEY_FORMAT = re.compile(r"sk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
# last_used_at is a hint for the owner, not an audit log: one write a minute per key is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class InvalidApiKey(Unauthenticated):
    message = "The API key is invalid, expired or revoked."


class AccountDisabled(Unauthenticated):
    message = "This account is disabled."


class NoSuchApiKey(NotFound):
    message = "No such API key."


def looks_like_api_key(token):
    """Whether a bearer token is one of our API keys rather than a JWT."""
    return token.startswith(KEY_PREFIX)


def _hash(raw_key):
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def create_key(user, *, name, expires_at=None):
    """Store a new key for ``user``. Only the returned instance carries the key (``secret``)."""
    prefix = KEY_PREFIX + secrets.token_hex(6)
    raw_key = f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    key = ApiKey(user_id=user.id, name=name, prefix=prefix, key_hash=_hash(raw_key), expires_at=expires_at)
    db.session.add(key)
    db.session.commit()
    key.secret = raw_key  # not a column: gone once this response is sent
    return key


def list_keys(user):
    return db.session.scalars(
        sa.select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    ).all()


def revoke_key(user, key_id):
    """Delete the key at once; another user's key is answered as missing (404)."""
    deleted = db.session.execute(
        sa.delete(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user.id)
    ).rowcount
    db.session.commit()
    if not deleted:
        raise NoSuchApiKey()


def revoke_all_keys(user_id):
    """Delete every API key of the user."""
    db.session.execute(sa.delete(ApiKey).where(ApiKey.user_id == user_id))
    db.session.commit()


# A key and its owner, in one query (the gate's, in autocommit: see saas/core/database.py).
_KEY_AND_OWNER = sa.select(
    ApiKey.id.label("key_id"), ApiKey.key_hash, ApiKey.expires_at.label("key_expires_at"),
    ApiKey.last_used_at.label("key_last_used_at"), *User.__table__.columns,
).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == sa.bindparam("prefix"))


def authenticate(raw_key):
    """``(user, key id)`` for ``raw_key``: its active owner; any unknown, expired or revoked key
    raises ``InvalidApiKey``. One round trip, no transaction (and a write once a minute)."""
    row = None
    if KEY_FORMAT.fullmatch(raw_key):  # anything else cannot be a key: no query for it
        row = read_row(_KEY_AND_OWNER, {"prefix": raw_key[:PREFIX_LENGTH]})
    if row is None or not hmac.compare_digest(row["key_hash"], _hash(raw_key)):
        raise InvalidApiKey()
    now = utcnow()
    if row["key_expires_at"] is not None and row["key_expires_at"] <= now:
        raise InvalidApiKey()
    if not row["is_active"]:
        raise AccountDisabled()
    if row["key_last_used_at"] is None or row["key_last_used_at"] <= now - LAST_USED_RESOLUTION:
        write(sa.update(ApiKey).where(ApiKey.id == row["key_id"]).values(last_used_at=now))
    user = attached(User(**{column.name: row[column.name] for column in User.__table__.columns}))
    return user, row["key_id"]


def connect_signals():
    """A new password or a deactivated account revokes every key of the user."""
    events.password_changed.connect(_revoke_on_account_event, weak=False)
    events.account_deactivated.connect(_revoke_on_account_event, weak=False)


def _revoke_on_account_event(user, **_):
    revoke_all_keys(user.id)
