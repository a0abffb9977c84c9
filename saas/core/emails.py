"""The one spelling of an email address, so one mailbox is one account however it is typed."""
from email_validator import EmailNotValidError, validate_email


def normalize_email(value):
    """email-validator's normalised form (local part in Unicode NFC; the domain in one form,
    whether typed in Unicode, punycode or full-width letters), lower-cased. Raises
    EmailNotValidError for anything that is not an address."""
    return validate_email(value.strip(), check_deliverability=False, test_environment=True).normalized.lower()


def lenient_email(value):
    """``normalize_email`` for lookups that must not fail (rate-limit keys, CLI arguments)."""
    try:
        return normalize_email(value)
    except EmailNotValidError:
        return value.strip().lower()
