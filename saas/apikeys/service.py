"""Issuing, finding, checking and revoking API keys.

A key reads ``sk_<12 hex>_<43 url-safe chars>``: the first part (the prefix) is stored in clear
to find the row, the whole key only as its SHA-256 hash, compared in constant time.
"""
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask_smorest import abort

from saas.apikeys.models import ApiKey
from saas.auth.service import TokenError
from saas.extensions import db
from saas.users.models import User

KEY_PREFIX = "sk_"
PREFIX_LENGTH = len(KEY_PREFIX) + 12
SECRET_BYTES = 32
KEY_FORMAT = re.compile(r"sk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
# last_used_at is a hint for the owner, not an audit log: one write a minute per key is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)

INVALID_KEY = "The API key is invalid, expired or revoked."


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
        abort(404, message="No such API key.")


def revoke_all_keys(user_id):
    """Delete every API key of the user (a password change: any key may have been minted by a thief)."""
    db.session.execute(sa.delete(ApiKey).where(ApiKey.user_id == user_id))
    db.session.commit()


def authenticate(raw_key):
    """The active user owning ``raw_key``, or a 401 for any unknown, expired or revoked key."""
    key = None
    if KEY_FORMAT.fullmatch(raw_key):  # anything else cannot be a key: no query for it
        key = db.session.scalar(sa.select(ApiKey).where(ApiKey.prefix == raw_key[:PREFIX_LENGTH]))
    if key is None or not hmac.compare_digest(key.key_hash, _hash(raw_key)):
        raise TokenError(INVALID_KEY)
    now = datetime.now(timezone.utc)
    if key.is_expired(now):
        raise TokenError(INVALID_KEY)
    user = db.session.get(User, key.user_id)
    if user is None or not user.is_active:
        raise TokenError("This account is disabled.")
    _touch(key, now)
    return user, key


def _touch(key, now):
    stale = now - LAST_USED_RESOLUTION
    db.session.execute(
        sa.update(ApiKey)
        .where(ApiKey.id == key.id, sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
