"""Signed, expiring tokens for the links we mail (itsdangerous, keyed by SECRET_KEY).

Nothing about them is stored: a token carries what it is for and is checked against the account
as it is now. Every link of an account (verifying its address, changing it, resetting the
password) is bound to the account's security stamp as it was when the link was asked for
(``issued_stamp`` is kept with the message, the token carries it): a password change or reset,
an address change, logout-all or deactivation gives the account a new stamp
(``User.rotate_security_stamp``) and so voids every link issued before, whatever it was for.
"""
import hashlib
import hmac

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from saas.core.errors import DomainError
from saas.extensions import db
from saas.users.models import User

EMAIL_VERIFY = "email-verify"
PASSWORD_RESET = "password-reset"


class InvalidToken(DomainError):
    status = 400
    message = "The link is invalid or has expired."

    def __init__(self, message=None):
        super().__init__(message, errors={"token": [message or self.message]})


class StaleLink(InvalidToken):
    message = "The link is no longer valid: the account's security settings changed since it was sent; ask for a new one."


def _serializer(purpose):
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"saas-{purpose}")


def _keyed_digest(text):
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:24]


def issued_stamp(user):
    """What a link asked for now is bound to: a keyed digest of the account's security stamp
    (the stamp itself never leaves the database)."""
    return _keyed_digest(f"stamp:{user.security_stamp or ''}")


def stamp_unchanged(user, stamp):
    """Whether the account's security stamp is still the one ``stamp`` (``issued_stamp``) names."""
    return isinstance(stamp, str) and hmac.compare_digest(stamp, issued_stamp(user))


def may_still_mint(user, stamp):
    """Whether a link asked for under ``stamp`` may be minted now (when its message is sent):
    the account is active and its stamp unchanged. Messages queued by an earlier release carry
    no stamp; they are bound to the stamp of now."""
    return user is not None and user.is_active and (stamp is None or stamp_unchanged(user, stamp))


def mint_link(purpose, user, stamp, **claims):
    """A token for one of ``user``'s links, bound to ``stamp`` (``issued_stamp`` when the link
    was asked for)."""
    return _serializer(purpose).dumps({"uid": user.id, "st": stamp, **claims})


def read_link(purpose, token, max_age_seconds):
    """``(user, claims)`` of a link minted for ``purpose`` within ``max_age_seconds``, for an
    active account whose security stamp has not changed since; else InvalidToken."""
    if not isinstance(token, str) or len(token) > 2048:
        raise InvalidToken()
    try:
        claims = _serializer(purpose).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise InvalidToken("The link has expired; ask for a new one.") from None
    except BadSignature:
        raise InvalidToken() from None
    if not isinstance(claims, dict) or not isinstance(claims.get("uid"), int):
        raise InvalidToken()
    user = db.session.get(User, claims["uid"])
    if user is None or not user.is_active:
        raise InvalidToken()
    if not stamp_unchanged(user, claims.get("st")):
        raise StaleLink()
    return user, claims


def address_fingerprint(email):
    """A keyed digest of an address: a token names the address it was minted for without
    carrying it (a token's payload is signed, not encrypted, and links end up in browser
    histories and front-end logs)."""
    return _keyed_digest(email)
