"""Secrets the app must read back (two-factor seeds, SSO client secrets, webhook signing secrets),
encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under keys derived (HKDF-SHA256)
from ``MFA_ENCRYPTION_KEY``: one or more comma-separated random strings, the first of which
encrypts while every one of them decrypts, so a key is rotated by putting the new one first,
re-encrypting what is stored (``flask users reencrypt-secrets``) and then dropping the old one.
Unset, the key is derived from ``SECRET_KEY`` (under another label than anything else uses): then
rotating SECRET_KEY makes the stored secrets unreadable, which is why production should set its own.
"""
import base64
import hashlib
import logging

from blinker import Namespace
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from saas.core.errors import ServiceUnavailable

_LABEL = b"saas secrets at rest v1"
log = logging.getLogger(__name__)

# Sent by ``flask users reencrypt-secrets`` in its transaction: each package keeping secrets
# encrypted here (webhook signing secrets) re-encrypts its own and returns how many.
reencrypting = Namespace().signal("secrets-reencrypting")


def sha256(text):
    """The hex SHA-256 under which a random single-use token (a state, a one-time code, a pending
    login) is stored and looked up. "surrogatepass": a lone surrogate from a request's JSON hashes
    to something that matches nothing, a refusal, where strict UTF-8 would raise (a 500)."""
    return hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()


class UnreadableSecret(ServiceUnavailable):
    """A stored secret that none of the configured keys decrypts (MFA_ENCRYPTION_KEY changed
    without re-encrypting, or SECRET_KEY rotated while it was unset): an operator's mistake,
    answered 503 (and logged) rather than taken for a wrong code."""

    message = "Stored secrets cannot be read with the configured keys (MFA_ENCRYPTION_KEY); an operator must fix it."


def _fernet(key_material):
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(key_material.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _box():
    config = current_app.config
    materials = tuple(config["MFA_ENCRYPTION_KEYS"]) or (config["SECRET_KEY"],)
    cached = current_app.extensions.get("secret_box")
    if cached is None or cached[0] != materials:
        cached = (materials, MultiFernet([_fernet(material) for material in materials]))
        current_app.extensions["secret_box"] = cached
    return cached[1]


def encrypt(plaintext):
    """``plaintext`` (text) encrypted under the first key, as text for a column."""
    return _box().encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext):
    """The text ``encrypt`` was given; raises UnreadableSecret when no configured key fits."""
    try:
        return _box().decrypt(ciphertext.encode("ascii")).decode()
    except InvalidToken:
        log.error("a stored secret cannot be decrypted: MFA_ENCRYPTION_KEY (or SECRET_KEY) changed without re-encrypting")
        raise UnreadableSecret() from None


def reencrypt(ciphertext):
    """``ciphertext`` encrypted again under the first key (key rotation)."""
    try:
        return _box().rotate(ciphertext.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise UnreadableSecret() from None
