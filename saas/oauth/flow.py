"""The browser's round trip through a provider, and the one-time codes that end it.

Social login uses it, and enterprise SSO (issue 26) reuses it with its own callback and its own
way of finding the account:

1. ``start``: a new ``state`` (single-use, ``STATE_SECONDS``), a PKCE code verifier (S256) and,
   for OpenID Connect, a nonce; the row that remembers them is bound to the browser by the
   SHA-256 of a random cookie value the caller sets on its answer. Answers the provider's
   sign-in URL.
2. ``take_state``: at the callback, the flow that ``state`` names, deleted as it is found, and
   found only with the cookie of the browser that began it: a forged, replayed or expired state,
   or a callback opened in another browser (login CSRF), finds nothing. ``identity_of`` then
   exchanges the code (PKCE) and has the provider's answer checked (``providers``).
3. ``issue_code`` / ``redeem_code``: the one-time codes the front end receives instead of any
   token (``OAuthCode``), found by their SHA-256, deleted when used, bound to the account's
   security stamp (``holder``).

Expired rows are deleted by the worker's sweep (``forget_expired``).
"""
import secrets
from datetime import timedelta

import sqlalchemy as sa

from saas.core import secrets as secret_box
from saas.core.secrets import sha256
from saas.core.database import atomic
from saas.core.time import utcnow
from saas.extensions import db
from saas.oauth.models import OAuthCode, OAuthState
from saas.users.models import User
from saas.users.tokens import issued_stamp, stamp_unchanged

STATE_SECONDS = 600
# A browser cookie value, a state, a code: 32 random bytes, URL-safe (43 characters).
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 256


def new_token():
    return secrets.token_urlsafe(TOKEN_BYTES)


def start(provider, *, purpose, browser, redirect_uri, provider_key=None, user=None, stamp=None, sso_org_id=None,
          login_hint=None):
    """Remember a new flow of ``browser`` (its cookie value) through ``provider`` and answer the
    provider's sign-in URL. ``provider_key``: what the flow records as its provider (the
    provider's name by default); ``user`` and ``stamp``: the account a link is for, and its
    security stamp when the link was asked for; ``sso_org_id``: the organization of an SSO login;
    ``login_hint``: the address the person gave, for the provider's sign-in page.
    The provider may be asked for its discovery document first (ProviderUnavailable,
    ProviderRefused), before anything is stored."""
    state, code_verifier = new_token(), secrets.token_urlsafe(48)
    nonce = new_token() if provider.uses_nonce else None
    url = provider.authorization_url(redirect_uri=redirect_uri, state=state, code_verifier=code_verifier, nonce=nonce,
                                     login_hint=login_hint)
    _remember(OAuthState(
        state_hash=sha256(state), browser_hash=sha256(browser), purpose=purpose,
        provider=provider_key or provider.name, nonce_hash=sha256(nonce) if nonce else None,
        code_verifier_encrypted=secret_box.encrypt(code_verifier), redirect_uri=redirect_uri,
        user_id=user.id if user is not None else None, stamp=stamp, sso_org_id=sso_org_id,
        expires_at=utcnow() + timedelta(seconds=STATE_SECONDS),
    ))
    return url


@atomic
def _remember(row):
    db.session.add(row)


@atomic
def take_state(state, browser, provider_key):
    """The flow through ``provider_key`` that ``state`` names, begun by ``browser`` and not
    expired, deleted now (a state works once); None otherwise, and then nothing is deleted (a
    callback URL opened elsewhere cannot spoil the flow of the browser it belongs to)."""
    if not _plausible(state) or not _plausible(browser):
        return None
    table = OAuthState.__table__
    return db.session.execute(
        sa.delete(table).where(
            table.c.state_hash == sha256(state), table.c.browser_hash == sha256(browser),
            table.c.provider == provider_key, table.c.expires_at > utcnow(),
        ).returning(*table.columns)
    ).first()


def identity_of(provider, flow, code):
    """What the provider's answer to ``flow`` (a row ``take_state`` returned) proves: the code
    exchanged with the flow's PKCE verifier and redirect URI, checked against its nonce."""
    return provider.identity(
        code=code, redirect_uri=flow.redirect_uri, nonce_hash=flow.nonce_hash,
        code_verifier=secret_box.decrypt(flow.code_verifier_encrypted),
    )


@atomic
def issue_code(kind, user, *, seconds, **fields):
    """A new one-time code of ``kind`` for ``user``, bound to the account's security stamp now;
    ``fields``: the other columns of ``OAuthCode``. Only its SHA-256 is stored."""
    code = new_token()
    db.session.add(OAuthCode(
        code_hash=sha256(code), kind=kind, user_id=user.id, stamp=issued_stamp(user),
        expires_at=utcnow() + timedelta(seconds=seconds), **fields,
    ))
    return code


def redeem_code(kind, code, *, user_id=None):
    """The row of ``code`` (of ``kind``, unexpired; with ``user_id``, only that account's),
    deleted now in the caller's use case; None otherwise. Of two requests with one code, one
    gets it."""
    if not _plausible(code):
        return None
    table = OAuthCode.__table__
    query = sa.delete(table).where(table.c.code_hash == sha256(code), table.c.kind == kind, table.c.expires_at > utcnow())
    if user_id is not None:
        query = query.where(table.c.user_id == user_id)
    return db.session.execute(query.returning(*table.columns)).first()


def may_log_in(user):
    """Whether ``user`` (or None) may be signed in to by a provider: it exists, is active and not deleted."""
    return user is not None and user.is_active and user.deleted_at is None


def holder(row):
    """The account a code or a link's flow is for, if it is active and its security stamp is the
    one the row was issued under (a password change, deactivation, logout-all... void it); else None."""
    user = db.session.get(User, row.user_id) if row is not None and row.user_id is not None else None
    if not may_log_in(user) or not stamp_unchanged(user, row.stamp):
        return None
    return user


def forget_of(user_id):
    """Delete every flow and code of an account (it is being deleted); the caller's use case commits."""
    db.session.execute(sa.delete(OAuthState).where(OAuthState.user_id == user_id))
    db.session.execute(sa.delete(OAuthCode).where(OAuthCode.user_id == user_id))


@atomic
def forget_expired():
    """Delete the flows and codes past their time; how many of each."""
    now = utcnow()
    states = db.session.execute(sa.delete(OAuthState).where(OAuthState.expires_at <= now)).rowcount
    codes = db.session.execute(sa.delete(OAuthCode).where(OAuthCode.expires_at <= now)).rowcount
    return {"states": states, "codes": codes}


def _plausible(token):
    return isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_LENGTH
