"""Passwords: which ones are refused, and hashing with bcrypt.

Refused (ASVS 5.0 6.2.4, 6.2.11; no composition rules): the ~20,000 most common passwords
(common-passwords.txt.gz, see COMMON-PASSWORDS.md), blanks, and the account's own email or name.

bcrypt reads only the first 72 bytes of its input and bcrypt 5 raises on longer input, so
the password is pre-hashed with SHA-256 (base64, so no NUL byte reaches bcrypt): every
character up to the 1024 allowed counts, and nothing crashes.
"""
import base64
import functools
import gzip
import hashlib
from pathlib import Path

import bcrypt
from flask import current_app

from saas.core.errors import DomainError, InvalidInput

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt.gz")
# Parts of a name or address shorter than this are too common to refuse inside a password.
MIN_PERSONAL_WORD = 4


class WrongCurrentPassword(DomainError):
    status = 400
    message = "The current password is incorrect."

    def __init__(self):
        super().__init__(errors={"current_password": [self.message]})


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


def verify_password(password, hashed_password):
    try:
        return bcrypt.checkpw(_prehash(password), hashed_password.encode("ascii"))
    except ValueError:  # a malformed stored hash never matches
        return False


def check_current_password(user, current_password):
    """What the sensitive account actions ask first: 400 ``WrongCurrentPassword`` unless it is."""
    if not verify_password(current_password, user.hashed_password):
        raise WrongCurrentPassword()


@functools.cache
def _dummy_hash(rounds):
    return bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds=rounds)).decode("ascii")


def burn_verification_time(password):
    """Spend what a real check costs, so an unknown email answers as slowly as a known one."""
    verify_password(password, _dummy_hash(current_app.config["BCRYPT_ROUNDS"]))
