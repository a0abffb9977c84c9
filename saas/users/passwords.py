"""Password hashing with bcrypt.

bcrypt reads only the first 72 bytes of its input and bcrypt 5 raises on longer input, so
the password is pre-hashed with SHA-256 (base64, so no NUL byte reaches bcrypt): every
character up to the 1024 allowed counts, and nothing crashes.
"""
import base64
import functools
import hashlib

import bcrypt
from flask import current_app


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


@functools.cache
def _dummy_hash(rounds):
    return bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds=rounds)).decode("ascii")


def burn_verification_time(password):
    """Spend what a real check costs, so an unknown email answers as slowly as a known one."""
    verify_password(password, _dummy_hash(current_app.config["BCRYPT_ROUNDS"]))
