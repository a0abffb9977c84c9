"""Logins, token pairs, refresh rotation with reuse detection, and revocation.

Every way of logging in (a password now; a social provider and SSO build on it) ends in
``complete_login``, the one place where a login becomes tokens: an account with two-factor on
gets a pending login (``LoginChallenge``) instead, which only ``verify_second_factor`` turns into
tokens. Each login opens a server-side session (``AuthSession``), the family every token of that
login belongs to: both tokens carry its id (``sid``), so ending the row ends the tokens at once;
the session records how it was authenticated (``methods``).
"""
import functools
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta

import jwt
import sqlalchemy as sa
from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token
from jwt.exceptions import ExpiredSignatureError, PyJWTError

from saas.auth.models import AuthSession, LoginChallenge, methods_of
from saas.core.database import Prepared, atomic, fields_of, loaded_from_row, read_row
from saas.core.errors import NotFound, Unauthenticated
from saas.core.ids import new_uuid
from saas.core.secrets import sha256
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs.service import attach_personal_org, personal_org_columns, personal_org_join
from saas.users import events
from saas.users.mfa import METHODS as MFA_METHODS, accept_code
from saas.users.models import User
from saas.users.passwords import burn_verification_time, verify_password
from saas.users.service import AccountDisabled
from saas.users.tokens import issued_stamp, stamp_unchanged
from saas.web.blueprint import MFA_METHOD, PASSWORD_METHOD

log = logging.getLogger(__name__)


class InvalidCredentials(Unauthenticated):
    message = "Incorrect email or password."


class TokenRejected(Unauthenticated):
    """Any token that must not be honoured. The messages never echo the library's internals."""

    message = "The token is invalid."


class TokenExpired(TokenRejected):
    message = "The token has expired."


class SessionEnded(TokenRejected):
    message = "The token has been revoked."


class SecondFactorRejected(Unauthenticated):
    """Any failure of the second-factor step: unknown, expired, used or exhausted token, or a
    wrong code. One message for all, so the answer tells an attacker nothing."""

    message = "The login could not be completed: its mfa_token is invalid or expired, or the code is wrong."


class NoSuchSession(NotFound):
    message = "No such session."


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


@dataclass
class SecondFactorNeeded:
    """What a login of an account with two-factor on gets instead of tokens."""

    mfa_token: str
    expires_in: int
    mfa_methods: list = field(default_factory=lambda: list(MFA_METHODS))
    mfa_required: bool = True


def check_credentials(email, password):
    """The active user with these credentials; the same 401 for any unknown or wrong part."""
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        burn_verification_time(password)
        raise InvalidCredentials()
    if not verify_password(password, user.hashed_password):
        raise InvalidCredentials()
    if not user.is_active:
        raise AccountDisabled()
    events.login_checking.send(user.email, user=user, method=PASSWORD_METHOD)  # a receiver may refuse it
    return user


@atomic
def complete_login(user, method, *, sso_org_id=None, user_agent=None, ip_address=None):
    """The one place where a login becomes tokens: the ``TokenPair`` of a new session of
    ``user``, who proved ``method`` (``"password"``...), or, when the account has two-factor on,
    ``SecondFactorNeeded`` (a pending login that ``verify_second_factor`` completes).
    ``sso_org_id``: the organization whose single sign-on the login came through (the session
    records it: that organization's ``require_mfa`` is met by it)."""
    if user.mfa_enabled:
        return _pending_login(user, [method], sso_org_id)
    return _open_session(user, [method], sso_org_id=sso_org_id, user_agent=user_agent, ip_address=ip_address)


def _pending_login(user, methods, sso_org_id):
    token = secrets.token_urlsafe(32)
    seconds = current_app.config["MFA_TOKEN_SECONDS"]
    db.session.add(LoginChallenge(
        token_hash=_token_hash(token), user_id=user.id, methods=",".join(methods), sso_org_id=sso_org_id,
        stamp=issued_stamp(user), expires_at=utcnow() + timedelta(seconds=seconds),
    ))
    return SecondFactorNeeded(token, seconds)


def _token_hash(token):
    return sha256(token)


def verify_second_factor(mfa_token, code, *, user_agent=None, ip_address=None):
    """Complete a pending login with a second-factor code: the token pair of a new session whose
    methods add ``"mfa"``. Any failure is the same 401; a wrong code counts against the pending
    login, which dies after ``LoginChallenge.MAX_ATTEMPTS`` of them."""
    session_tokens = _verified_login(mfa_token, code, user_agent=user_agent, ip_address=ip_address)
    if session_tokens is None:
        raise SecondFactorRejected()
    return session_tokens


@atomic
def _verified_login(mfa_token, code, *, user_agent, ip_address):
    """The token pair, or None for a wrong code, which is counted in this same transaction, under
    the challenge's row lock: concurrent guesses queue on the lock and each reads the count the
    previous one committed, so a pending login gets its MAX_ATTEMPTS guesses and no more."""
    now = utcnow()
    challenge = db.session.scalar(
        sa.select(LoginChallenge).where(LoginChallenge.token_hash == _token_hash(mfa_token)).with_for_update()
    )
    if (challenge is None or challenge.used_at is not None or challenge.expires_at <= now
            or challenge.attempts >= LoginChallenge.MAX_ATTEMPTS):
        raise SecondFactorRejected()
    user = db.session.get(User, challenge.user_id)
    # Its password changed, its two-factor was turned off or reset, the account was disabled...
    if user is None or not user.is_active or not user.mfa_enabled or not stamp_unchanged(user, challenge.stamp):
        raise SecondFactorRejected()
    if accept_code(user, code) is None:
        challenge.attempts += 1
        return None
    challenge.used_at = now
    return _open_session(user, [*methods_of(challenge.methods), MFA_METHOD], sso_org_id=challenge.sso_org_id,
                         user_agent=user_agent, ip_address=ip_address)


def user_of_pending_login(mfa_token):
    """The address of the account a pending login is for, or None (the login lockout counts
    wrong codes against it)."""
    return db.session.scalar(
        sa.select(User.email).join(LoginChallenge, LoginChallenge.user_id == User.id)
        .where(LoginChallenge.token_hash == _token_hash(mfa_token))
    )


def _open_session(user, methods, *, sso_org_id=None, user_agent=None, ip_address=None):
    """A new login (token family) for ``user``, authenticated by ``methods``; its first token
    pair. Only ``complete_login`` and ``verify_second_factor`` call it."""
    session = AuthSession(
        id=new_uuid(),
        user_id=user.id,
        refresh_jti=new_uuid(),
        expires_at=utcnow() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
        user_agent=(user_agent or "")[:256] or None,
        # Behind a proxy the address comes from X-Forwarded-For, which a client can fill with anything.
        ip_address=(ip_address or "")[:64] or None,
        methods=",".join(dict.fromkeys(methods)),
        sso_org_id=sso_org_id,
    )
    db.session.add(session)
    db.session.flush()
    return _token_pair(user.id, session.id, session.refresh_jti)


def open_sessions(user_id):
    """The user's sessions that are neither revoked nor expired, newest first."""
    return db.session.scalars(
        sa.select(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > utcnow())
        .order_by(AuthSession.created_at.desc())
    ).all()


@atomic
def end_own_session(user_id, session_id):
    """End one of the user's own sessions; anyone else's (or an ended one) is a 404."""
    ended = db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None),
               AuthSession.expires_at > utcnow())
        .values(revoked_at=utcnow(), revoked_reason="logout")
    ).rowcount
    if not ended:
        raise NoSuchSession()


# The active user of an open, unexpired session, and their personal organization: everything an
# access token needs, in one query.
_USER_OF_OPEN_SESSION = Prepared("saas_user_of_open_session", (
    sa.select(*User.__table__.columns, AuthSession.methods.label("session_methods"),
              AuthSession.sso_org_id.label("session_sso_org_id"), *personal_org_columns())
    .join(AuthSession, AuthSession.user_id == User.id)
    .outerjoin(*personal_org_join())
    .where(
        AuthSession.id == sa.bindparam("session_id"),
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > sa.bindparam("now"),
    )
))


def user_of_access_token(raw_token):
    """``(user, session id, session methods, the organization of its single sign-on or None)``
    for an access token whose session is open and user active;
    raises ``TokenRejected`` (or ``AccountDisabled``) for any token that must not be honoured.

    One round trip to the database and no transaction: the query runs in autocommit, and the
    user it returns joins the request's session as if loaded there, so a read-only request
    never begins or rolls back a transaction.
    """
    claims = _decode(raw_token, "access")
    session_id, subject = _claim(claims, "sid"), _claim(claims, "sub")
    if session_id is None or subject is None:
        raise TokenRejected()
    row = read_row(_USER_OF_OPEN_SESSION, {"session_id": session_id, "now": utcnow()})
    if row is None or str(row["id"]) != subject:
        raise SessionEnded()
    if not row["is_active"]:
        raise AccountDisabled()
    user = loaded_from_row(User, row)
    attach_personal_org(user, row)
    return user, session_id, tuple(methods_of(row["session_methods"])), row["session_sso_org_id"]


def rotate_refresh_token(raw_token):
    """Exchange a refresh token for a new pair, retiring it.

    The swap is one conditional UPDATE, so of two concurrent refreshes with the same token at
    most one wins. A token that is not the family's current one is a replay, the sign of a
    stolen token: the whole family is revoked.
    """
    claims = _decode(raw_token, "refresh")
    session_id, jti = _claim(claims, "sid"), _claim(claims, "jti")
    if session_id is None or jti is None:
        raise SessionEnded()
    try:
        return _rotated(session_id, jti, claims.get("sub"))
    except _Replayed:
        _revoke_replayed_family(session_id, jti)
        raise SessionEnded() from None


class _Replayed(Exception):
    """A refresh token that is not its family's current one."""


@atomic
def _rotated(session_id, jti, subject):
    new_jti = new_uuid()
    now = utcnow()
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
        raise _Replayed()
    session = db.session.get(AuthSession, session_id)
    if str(session.user_id) != subject or not session.user.is_active:
        raise SessionEnded()
    return _token_pair(session.user_id, session.id, new_jti)


@atomic
def _revoke_replayed_family(session_id, jti):
    session = db.session.get(AuthSession, session_id)
    if session is not None and not session.is_revoked and session.refresh_jti != jti:
        log.warning("refresh token replayed; revoking session %s of user %s", session.id, session.user_id)
        revoke_sessions(session_id=session.id, reason="refresh-reuse")


def revoke_sessions(*, session_id=None, user_id=None, except_session_id=None, reason):
    """Revoke the open sessions selected by the arguments, in the caller's use case."""
    query = sa.update(AuthSession).where(AuthSession.revoked_at.is_(None))
    if session_id is not None:
        query = query.where(AuthSession.id == session_id)
    if user_id is not None:
        query = query.where(AuthSession.user_id == user_id)
    if except_session_id is not None:
        query = query.where(AuthSession.id != except_session_id)
    db.session.execute(query.values(revoked_at=utcnow(), revoked_reason=reason))


@atomic
def end_session(session_id):
    revoke_sessions(session_id=session_id, reason="logout")


def end_all_sessions(user_id, *, except_session_id=None, reason="logout-all"):
    revoke_sessions(user_id=user_id, except_session_id=except_session_id, reason=reason)


@atomic
def log_out_everywhere(user, *, reason="logout-all"):
    """End every session of ``user`` and void every link mailed for the account (its security
    stamp changes): whoever made the owner log out everywhere may have asked for some."""
    user.rotate_security_stamp()
    end_all_sessions(user.id, reason=reason)


def connect_signals():
    """A new password ends every other session of the user; deactivation and an operator's
    reset of the second factor end all of them."""
    events.password_changed.connect(_end_sessions_after_password_change, weak=False)
    events.account_deactivated.connect(_end_sessions_after_deactivation, weak=False)
    events.account_secured.connect(_end_sessions_of_secured_account, weak=False)
    events.account_deleting.connect(_end_sessions_of_deleted_account, weak=False)
    events.account_export.connect(_export_sessions, weak=False)


def _end_sessions_after_password_change(user, *, keep_session_id=None, **_):
    end_all_sessions(user.id, except_session_id=keep_session_id, reason="password-change")


def _end_sessions_after_deactivation(user, **_):
    end_all_sessions(user.id, reason="deactivated")


def _end_sessions_of_secured_account(user, *, reason, **_):
    revoke_sessions(user_id=user.id, reason=reason)


def _end_sessions_of_deleted_account(user, **_):
    """Every session ends; the rows stay (when the account logged in) without the addresses and
    clients it used."""
    revoke_sessions(user_id=user.id, reason="account-deleted")
    db.session.execute(
        sa.update(AuthSession).where(AuthSession.user_id == user.id).values(ip_address=None, user_agent=None)
    )


SESSION_EXPORT = ("id", "created_at", "last_refreshed_at", "expires_at", "revoked_at", "revoked_reason",
                  "user_agent", "ip_address", "methods")


def _export_sessions(user, **_):
    sessions = db.session.scalars(
        sa.select(AuthSession).where(AuthSession.user_id == user.id).order_by(AuthSession.created_at)
    )
    return {"sessions": [fields_of(session, SESSION_EXPORT) for session in sessions]}


def _decode(raw_token, expected_type):
    """The claims of a token we signed (HS256 with SECRET_KEY, unexpired), else TokenRejected."""
    config = current_app.config
    try:
        claims = _verified_claims(raw_token, config["JWT_SECRET_KEY"], tuple(config["JWT_DECODE_ALGORITHMS"]))
    except ExpiredSignatureError:
        raise TokenExpired() from None
    except (PyJWTError, ValueError):
        raise TokenRejected() from None
    if claims["exp"] <= time.time():  # a remembered signature check says nothing about the time
        raise TokenExpired()
    if claims.get("type") != expected_type:
        raise TokenRejected(f"Only {expected_type} tokens are allowed.")
    return claims


@functools.lru_cache(maxsize=4096)
def _verified_claims(raw_token, secret, algorithms):
    """PyJWT's signature and claim checks, remembered per token: a client sends the same access
    token for up to 30 minutes, and checking its signature again proves nothing new (whether
    the token may still be honoured is the session query's job). Failures are not remembered.
    flask-jwt-extended's own decode would parse the token three times."""
    return jwt.decode(raw_token, secret, algorithms=list(algorithms), options={"require": ["exp", "iat", "sub", "type"]})


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
