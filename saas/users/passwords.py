"""Passwords: which ones are refused, and hashing with bcrypt.

Refused (ASVS 5.0 6.2.4, 6.2.11; no composition rules): the ~20,000 most common passwords
(common-passwords.txt.gz, see COMMON-PASSWORDS.md), blanks, and the account's own email or name.

bcrypt reads only the first 72 bytes of its input and bcrypt 5 raises on longer input, so
the password is pre-hashed with SHA-256 (base64, so no NUL byte reaches bcrypt): every
character up to the 1024 allowed counts, and nothing crashes.

An account made by a social login has no password: its ``hashed_password`` is an unusable
marker (``UNUSABLE_PREFIX`` and random text, never a bcrypt hash), which no password matches,
in as much time as a real check takes, in this release and the previous one (bcrypt refuses it
as a malformed hash). A password reset gives it one.
"""
import base64
import functools
import secrets
import gzip
import hashlib
from pathlib import Path

import bcrypt
from flask import current_app

from saas.core.errors import Conflict, DomainError, InvalidInput

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt.gz")
# Parts of a name or address shorter than this are too common to refuse inside a password.
MIN_PERSONAL_WORD = 4
# What an account without a password holds instead of a hash (Django's convention).
UNUSABLE_PREFIX = "!"


class WrongCurrentPassword(DomainError):
    status = 400
    message = "The current password is incorrect."

    def __init__(self):
        super().__init__(errors={"current_password": [self.message]})


class PasswordNotSet(Conflict):
    """A sensitive action asks for the current password of an account that has none (made by a
    social login): its owner sets one through a password reset first."""

    message = (
        "This account has no password yet (it signs in with a provider): set one with POST "
        "/api/v1/auth/password-reset first."
    )

    def __init__(self):
        super().__init__(errors={"reason": ["password_not_set"]})


class WeakPassword(InvalidInput):
    def __init__(self, reason):
        super().__init__("The password is too easy to guess.", field="password", reason=reason)


@functools.cache
def common_passwords():
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def check_password(password, *, email, full_name=None):
    """Refuse a password that is guessable: blank, among the most common ones, or made of the
    account's own email or name. Raises ``WeakPassword`` saying which."""
    folded = password.strip().casefold()
    if not folded:
        raise WeakPassword("A password cannot be only spaces.")
    if folded in common_passwords():
        raise WeakPassword("This is one of the most common passwords; choose another.")
    local_part = email.split("@", 1)[0]
    personal = {email, local_part, full_name or "", *(full_name or "").split()}
    if any(len(word) >= MIN_PERSONAL_WORD and word.casefold() in folded for word in personal):
        raise WeakPassword("A password cannot contain your email address or name.")


def _prehash(password):
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password):
    rounds = current_app.config["BCRYPT_ROUNDS"]
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def unusable_password():
    """The ``hashed_password`` of an account without a password: nothing matches it."""
    return UNUSABLE_PREFIX + secrets.token_urlsafe(32)


def has_usable_password(hashed_password):
    return not hashed_password.startswith(UNUSABLE_PREFIX)


def verify_password(password, hashed_password):
    if not has_usable_password(hashed_password):
        burn_verification_time(password)  # as slow as a real check: a login tells nothing
        return False
    try:
        return bcrypt.checkpw(_prehash(password), hashed_password.encode("ascii"))
    except ValueError:  # a malformed stored hash never matches
        return False


def check_current_password(user, current_password):
    """What the sensitive account actions ask first: 400 ``WrongCurrentPassword`` unless it is;
    409 ``PasswordNotSet`` for an account without a password."""
    if not has_usable_password(user.hashed_password):
        raise PasswordNotSet()
    if not verify_password(current_password, user.hashed_password):
        raise WrongCurrentPassword()


@functools.cache
def _dummy_hash(rounds):
    return bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds=rounds)).decode("ascii")


def burn_verification_time(password):
    """Spend what a real check costs, so an unknown email answers as slowly as a known one."""
    verify_password(password, _dummy_hash(current_app.config["BCRYPT_ROUNDS"]))
