"""Marshmallow fields shared by several features."""
import re

import marshmallow as ma
from email_validator import EmailNotValidError

from saas.core.emails import normalize_email

# NIST SP 800-63B: at least 8 characters, long passphrases welcome, no composition rules.
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

# PostgreSQL text cannot hold NUL, and a lone UTF-16 surrogate cannot be encoded as UTF-8 (for
# the database or the password hash): such input is a 422, never a 500.
UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


def storable(value):
    if UNSTORABLE_CHARACTERS.search(value):
        raise ma.ValidationError("Contains a NUL character or an unpaired surrogate.")


def Text(*, max_length, min_length=None, **kwargs):
    """A free-text string that PostgreSQL can store."""
    return ma.fields.String(validate=[ma.validate.Length(min=min_length, max=max_length), storable], **kwargs)


class Email(ma.fields.String):
    """An email address, checked for syntax (no DNS lookup) and normalised (``normalize_email``),
    so one mailbox is one account however its address is typed."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {}).setdefault("format", "email")
        kwargs.setdefault("validate", ma.validate.Length(max=320))
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return normalize_email(super()._deserialize(value, attr, data, **kwargs))
        except EmailNotValidError as error:
            raise ma.ValidationError(f"Not a valid email address: {error}") from error


def NewPassword(**kwargs):
    """A password being set: 8 to 1024 characters, no composition rules (NIST SP 800-63B)."""
    return _password_field(MIN_PASSWORD_LENGTH, **kwargs)


def GivenPassword(**kwargs):
    """A password being checked: any length the app could have stored."""
    return _password_field(1, **kwargs)


def _password_field(min_length, metadata=None, **kwargs):
    return ma.fields.String(
        validate=[ma.validate.Length(min=min_length, max=MAX_PASSWORD_LENGTH), storable],
        load_only=True,
        metadata={"format": "password", **(metadata or {})},
        **kwargs,
    )
