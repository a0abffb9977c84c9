"""Signed, expiring tokens for the links we mail (itsdangerous, keyed by SECRET_KEY).

Nothing about them is stored: a token carries what it is for and is checked against the account
as it is now. A password reset token carries a fingerprint of the password hash it was minted
for, so it stops working once the password changes: it works once, and every older one with it.
"""
import hashlib
import hmac

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from saas.core.errors import DomainError

EMAIL_VERIFY = "email-verify"
PASSWORD_RESET = "password-reset"


class InvalidToken(DomainError):
    status = 400
    message = "The link is invalid or has expired."

    def __init__(self, message=None):
        super().__init__(message, errors={"token": [message or self.message]})


def _serializer(purpose):
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"saas-{purpose}")


def mint(purpose, payload):
    return _serializer(purpose).dumps(payload)


def read(purpose, token, max_age_seconds):
    """The payload of a token minted for ``purpose`` within ``max_age_seconds``; else InvalidToken."""
    if not isinstance(token, str) or len(token) > 2048:
        raise InvalidToken()
    try:
        payload = _serializer(purpose).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise InvalidToken("The link has expired; ask for a new one.") from None
    except BadSignature:
        raise InvalidToken() from None
    if not isinstance(payload, dict) or not isinstance(payload.get("uid"), int):
        raise InvalidToken()
    return payload


def password_fingerprint(hashed_password):
    """A short digest of the stored hash: changes whenever the password does."""
    return hashlib.sha256(hashed_password.encode()).hexdigest()[:24]


def address_fingerprint(email):
    """A keyed digest of an address: a token names the address it was minted for without
    carrying it (a token's payload is signed, not encrypted, and links end up in browser
    histories and front-end logs)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()[:24]
