"""Logins, token pairs, refresh rotation with reuse detection, and revocation."""
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import current_app, request
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from werkzeug.exceptions import Unauthorized

from saas.auth.models import AuthSession, new_id
from saas.auth.passwords import burn_verification_time, verify_password
from saas.extensions import db
from saas.users.models import User

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Incorrect email or password."


class TokenError(Unauthorized):
    """A token that must not be honoured; answered as 401 with a Bearer challenge."""

    def get_headers(self, *args, **kwargs):
        return [*super().get_headers(*args, **kwargs), ("WWW-Authenticate", "Bearer")]


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


def authenticate(email, password):
    """The active user with these credentials; the same 401 for any unknown or wrong part."""
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        burn_verification_time(password)
        raise TokenError(INVALID_CREDENTIALS)
    if not verify_password(password, user.hashed_password):
        raise TokenError(INVALID_CREDENTIALS)
    if not user.is_active:
        raise TokenError("This account is disabled.")
    return user


def start_session(user):
    """Open a new login (token family) for ``user`` and return its first token pair."""
    now = datetime.now(timezone.utc)
    session = AuthSession(
        id=new_id(),
        user_id=user.id,
        refresh_jti=new_id(),
        expires_at=now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
        user_agent=(request.user_agent.string or "")[:256] or None,
        ip_address=request.remote_addr,
    )
    db.session.add(session)
    db.session.commit()
    return _token_pair(user.id, session.id, session.refresh_jti)


def rotate_refresh_token(raw_token):
    """Exchange a refresh token for a new pair, retiring it.

    The swap is one conditional UPDATE, so of two concurrent refreshes with the same token at
    most one wins. A token that is not the family's current one is a replay, the sign of a
    stolen token: the whole family is revoked.
    """
    claims = decode_token(raw_token)
    if claims.get("type") != "refresh":
        raise TokenError("Only refresh tokens are allowed.")
    session_id, jti = _claim(claims, "sid"), _claim(claims, "jti")
    if session_id is None or jti is None:
        raise TokenError("The refresh token has been revoked.")
    new_jti = new_id()
    now = datetime.now(timezone.utc)
    swapped = db.session.execute(
        sa.update(AuthSession)
        .where(
            AuthSession.id == session_id,
            AuthSession.refresh_jti == jti,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
        .values(refresh_jti=new_jti, last_refreshed_at=now)
    ).rowcount
    if swapped != 1:
        db.session.rollback()
        _revoke_replayed_family(session_id, jti)
        raise TokenError("The refresh token has been revoked.")
    session = db.session.get(AuthSession, session_id)
    if str(session.user_id) != claims.get("sub") or not session.user.is_active:
        db.session.rollback()
        raise TokenError("The refresh token has been revoked.")
    db.session.commit()
    return _token_pair(session.user_id, session.id, new_jti)


def _revoke_replayed_family(session_id, jti):
    session = db.session.get(AuthSession, session_id) if session_id else None
    if session is not None and not session.is_revoked and session.refresh_jti != jti:
        log.warning("refresh token replayed; revoking session %s of user %s", session.id, session.user_id)
        revoke_sessions(session_id=session.id, reason="refresh-reuse")


def revoke_sessions(*, session_id=None, user_id=None, except_session_id=None, reason):
    """Revoke the open sessions selected by the arguments, and commit."""
    query = sa.update(AuthSession).where(AuthSession.revoked_at.is_(None))
    if session_id is not None:
        query = query.where(AuthSession.id == session_id)
    if user_id is not None:
        query = query.where(AuthSession.user_id == user_id)
    if except_session_id is not None:
        query = query.where(AuthSession.id != except_session_id)
    db.session.execute(query.values(revoked_at=datetime.now(timezone.utc), revoked_reason=reason))
    db.session.commit()


def end_session(session_id):
    revoke_sessions(session_id=session_id, reason="logout")


def end_all_sessions(user_id, *, except_session_id=None, reason="logout-all"):
    revoke_sessions(user_id=user_id, except_session_id=except_session_id, reason=reason)


def open_session_of(claims):
    """The open session a verified token belongs to (its user loaded with it), else None."""
    session_id = _claim(claims, "sid")
    session = db.session.get(AuthSession, session_id) if session_id else None
    if session is None or session.is_revoked or str(session.user_id) != claims.get("sub"):
        return None
    return session


def _claim(claims, name):
    """A string claim, or None: a correctly signed token may still carry any JSON in it."""
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _token_pair(user_id, session_id, refresh_jti):
    identity = str(user_id)
    access_token = create_access_token(identity=identity, additional_claims={"sid": session_id})
    refresh_token = create_refresh_token(
        identity=identity, additional_claims={"sid": session_id, "jti": refresh_jti}
    )
    expires_in = int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())
    return TokenPair(access_token, refresh_token, expires_in)
