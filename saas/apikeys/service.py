"""Issuing, finding, checking and revoking API keys.

A key reads ``sk_<12 hex>_<43 url-safe chars>``: the first part (the prefix) is stored in clear
to find the row, the whole key only as its SHA-256 hash, compared in constant time.

A key belongs to an organization and acts only for it (its quota, its plan), with its creator
as the caller. ``/api/v1/api-keys`` are the personal organization's keys.

Keys are capped (API_KEYS_MAX) twice over: per organization, so one team cannot mint keys
without end however many admins it has, and per creator across the organizations they belong
to, so one account cannot either by making more teams.
"""
import hmac
import re
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from saas.apikeys.models import ApiKey
from saas.core.database import Prepared, atomic, fields_of, loaded_from_row, read_row, write
from saas.core.errors import Conflict, NotFound, Unauthenticated
from saas.core.secrets import sha256
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs import audit
from saas.orgs import events as org_events
from saas.orgs.models import Membership, Organization
from saas.orgs.service import (
    KeysOrganizationDeleted, attach_personal_org, lock_org, personal_org_columns, personal_org_join,
)
from saas.users import events
from saas.users.models import User
from saas.users.service import AccountDisabled

KEY_PREFIX = "sk_"
PREFIX_LENGTH = len(KEY_PREFIX) + 12
SECRET_BYTES = 32
KEY_FORMAT = re.compile(r"sk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
# last_used_at is a hint for the owner, not an audit log: one write a minute per key is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class InvalidApiKey(Unauthenticated):
    message = "The API key is invalid, expired or revoked."


class NoSuchApiKey(NotFound):
    message = "No such API key."


class TooManyApiKeys(Conflict):
    def __init__(self, message):
        super().__init__(message, errors={"reason": ["too_many_api_keys"]})


def looks_like_api_key(token):
    """Whether a bearer token is one of our API keys rather than a JWT."""
    return token.startswith(KEY_PREFIX)


def _hash(raw_key):
    return sha256(raw_key)


@atomic
def create_key(org, user, *, name, expires_at=None):
    """Store a new key of ``org``, made by ``user``, unless either has API_KEYS_MAX keys
    already (409). Only the returned instance carries the key (``secret``)."""
    _refuse_past_the_cap(org, user)
    prefix = KEY_PREFIX + secrets.token_hex(6)
    raw_key = f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    key = ApiKey(
        user_id=user.id, org_id=org.id, name=name, prefix=prefix, key_hash=_hash(raw_key), expires_at=expires_at
    )
    db.session.add(key)
    db.session.flush()
    audit.record(org.id, "api_key.created", target=f"api_key:{key.id}", details={"name": name, "prefix": prefix})
    key.secret = raw_key  # not a column: gone once this response is sent
    return key


def _refuse_past_the_cap(org, user):
    """Counted under the locks of the organization and of the user's personal one (in id order,
    like every lock of several organizations), so concurrent creations stop at the cap."""
    for org_id in sorted({org.id, user.personal_org.id}):
        lock_org(org_id)
    limit = current_app.config["API_KEYS_MAX"]
    in_org = db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.org_id == org.id))
    if in_org >= limit:
        whose = "You have" if org.personal else "This organization has"
        raise TooManyApiKeys(f"{whose} {limit} API keys, the most allowed: revoke one first.")
    # Keys of organizations the user has left (kept by an admin) are that organization's now.
    their_orgs = sa.select(Membership.org_id).where(Membership.user_id == user.id)
    made = db.session.scalar(
        sa.select(sa.func.count()).select_from(ApiKey)
        .where(ApiKey.user_id == user.id, sa.or_(ApiKey.org_id.is_(None), ApiKey.org_id.in_(their_orgs)))
    )
    if made >= limit:
        raise TooManyApiKeys(
            f"You have made {limit} API keys across your organizations, the most one person may: revoke one first."
        )


def list_keys(org):
    return db.session.scalars(
        sa.select(ApiKey).where(ApiKey.org_id == org.id).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    ).all()


@atomic
def revoke_key(org, key_id):
    """Delete the key at once; another organization's key is answered as missing (404)."""
    key = db.session.scalar(sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org.id))
    if key is None:
        raise NoSuchApiKey()
    audit.record(org.id, "api_key.revoked", target=f"api_key:{key.id}", details={"name": key.name, "prefix": key.prefix})
    db.session.delete(key)


def revoke_all_keys(user_id):
    """Delete every API key the user created, in every organization (in the caller's use case)."""
    db.session.execute(sa.delete(ApiKey).where(ApiKey.user_id == user_id))


_KEY_ORG = Organization.__table__.alias("key_org")
# A key, whether its organization still exists, its creator and the creator's personal
# organization, in one query (the gate's, in autocommit: see saas/core/database.py).
_KEY_AND_OWNER = Prepared("saas_key_and_owner", (
    sa.select(
        ApiKey.id.label("key_id"), ApiKey.key_hash, ApiKey.expires_at.label("key_expires_at"),
        ApiKey.last_used_at.label("key_last_used_at"), ApiKey.org_id.label("key_org_id"),
        _KEY_ORG.c.id.label("key_org_found"), *User.__table__.columns, *personal_org_columns(),
    )
    .join(User, User.id == ApiKey.user_id)
    .outerjoin(_KEY_ORG, _KEY_ORG.c.id == ApiKey.org_id)
    .outerjoin(*personal_org_join())
    .where(ApiKey.prefix == sa.bindparam("prefix"))
))


def user_of_api_key(raw_key):
    """``(user, key id, key's organization id)`` for ``raw_key``: its active creator; any
    unknown, expired or revoked key raises ``InvalidApiKey``. One round trip, no transaction
    (and a write once a minute)."""
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
    if row["key_org_id"] is not None and row["key_org_found"] is None:
        raise KeysOrganizationDeleted()  # its keys go with it; one written before they did
    if row["key_last_used_at"] is None or row["key_last_used_at"] <= now - LAST_USED_RESOLUTION:
        write(sa.update(ApiKey).where(ApiKey.id == row["key_id"]).values(last_used_at=now))
    user = loaded_from_row(User, row)
    attach_personal_org(user, row)
    return user, row["key_id"], row["key_org_id"]


def connect_signals():
    """A new password or a deactivated account revokes every key the user created; leaving or
    being removed from an organization, the keys they created for it (unless kept)."""
    events.password_changed.connect(_revoke_on_account_event, weak=False)
    events.account_deactivated.connect(_revoke_on_account_event, weak=False)
    org_events.member_removed.connect(_revoke_on_removal, weak=False)
    events.account_deleting.connect(_revoke_on_deletion, weak=False)
    events.account_export.connect(_export_keys, weak=False)


def _revoke_on_account_event(user, **_):
    revoke_all_keys(user.id)


def _revoke_on_removal(org_id, *, user_id, keep_api_keys=False, **_):
    """Runs in the removal's transaction (the caller commits)."""
    if keep_api_keys:
        return
    keys = db.session.scalars(sa.select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.user_id == user_id)).all()
    for key in keys:
        audit.record(org_id, "api_key.revoked", target=f"api_key:{key.id}",
                     details={"name": key.name, "prefix": key.prefix, "reason": "member removed"})
        db.session.delete(key)


def _revoke_on_deletion(user, **_):
    revoke_all_keys(user.id)


KEY_EXPORT = ("id", "org_id", "name", "prefix", "created_at", "last_used_at", "expires_at")


def _export_keys(user, **_):
    keys = db.session.scalars(sa.select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
    return {"api_keys": [fields_of(key, KEY_EXPORT) for key in keys]}  # never the hash
