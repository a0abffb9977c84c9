"""Two-factor authentication of an account: an authenticator app (TOTP, RFC 6238) and recovery codes.

- The TOTP secret is encrypted at rest (``saas.core.secrets``); a setup replaces an unconfirmed
  one and becomes active with its first code. A code is accepted once: the time step of the last
  accepted code is stored and no code of that step or an earlier one works again, on any login,
  even inside the +/-1 step window (RFC 6238 section 5.2; pyotp's ``verify()`` would take it twice).
- Ten recovery codes are shown once, stored as salted SHA-256 hashes, and each works once.
- Turning two-factor on or off, new recovery codes, and an operator's reset change the account's
  security stamp (every pending link dies), mail a notice and write an audit event (organization
  null, like the operators' own).
- ``check_second_factor`` is what the sensitive account actions (password or address change,
  deletion) call: with two-factor on, they need a valid code too.

A password reset never turns two-factor off: only ``reset`` (the operator's
``flask users reset-mfa``) does, for an owner who lost both the authenticator and the codes.
"""
import hmac
import secrets
import time

import pyotp
import segno
import sqlalchemy as sa
from flask import current_app

from saas.core import secrets as secret_box
from saas.core.secrets import sha256
from saas.core.database import atomic
from saas.core.errors import Conflict, DomainError, Unauthenticated
from saas.core.time import utcnow
from saas.extensions import db
from saas.mail import queue_mail
from saas.users import events
from saas.users.models import RecoveryCode, TotpCredential
from saas.users.passwords import check_current_password

TOTP = "totp"
RECOVERY_CODE = "recovery_code"
METHODS = (TOTP, RECOVERY_CODE)
RECOVERY_CODES = 10
# Recovery codes read "xxxxxx-xxxxxx": 12 characters of an alphabet without look-alikes (60 bits).
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"[:32]
_CODE_GROUP = 6
STEP_SECONDS = 30


class MfaAlreadyEnabled(Conflict):
    message = "Two-factor authentication is on already: turn it off first to set up another authenticator."


class NoPendingSetup(DomainError):
    status = 400
    message = "Start with POST /api/v1/auth/mfa/totp/setup: there is no authenticator waiting to be confirmed."


class WrongSetupCode(DomainError):
    status = 400
    message = "The code does not match the authenticator being set up; check the device's clock and try again."

    def __init__(self):
        super().__init__(errors={"code": [self.message]})


class MfaNotEnabled(Conflict):
    message = "Two-factor authentication is not on."


class SecondFactorRequired(Unauthenticated):
    """A missing or wrong second-factor code where one is needed: 401, and nothing changes."""

    message = "This needs a current code from your authenticator app, or one of your recovery codes."

    def __init__(self):
        super().__init__(errors={"code": [self.message], "reason": ["mfa_code_required"]})


def _now_step():
    return int(time.time()) // STEP_SECONDS


def _normalized(code):
    return "".join(str(code or "").split()).replace("-", "").lower()


def _credential(user_id, *, confirmed):
    query = sa.select(TotpCredential).where(TotpCredential.user_id == user_id)
    query = query.where(TotpCredential.confirmed_at.is_not(None) if confirmed else TotpCredential.confirmed_at.is_(None))
    return db.session.scalar(query)


def _totp_accepted(credential, code):
    """Whether ``code`` is the credential's code of a step in the +/-1 window that is later than
    the last accepted one; if so that step is claimed (one conditional UPDATE: of two logins
    with the same code at the same moment, one wins)."""
    if len(code) != 6 or not (code.isascii() and code.isdigit()):  # not "١٢٣٤٥٦"
        return False
    totp = pyotp.TOTP(secret_box.decrypt(credential.secret_encrypted))
    last = credential.last_used_step
    for step in range(_now_step() - 1, _now_step() + 2):
        if last is not None and step <= last:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            claimed = db.session.execute(
                sa.update(TotpCredential)
                .where(
                    TotpCredential.user_id == credential.user_id,
                    sa.or_(TotpCredential.last_used_step.is_(None), TotpCredential.last_used_step < step),
                )
                .values(last_used_step=step)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed:
                credential.last_used_step = step
            return bool(claimed)
    return False


def _recovery_hash(salt, normalized):
    return sha256(f"{salt}:{normalized}")


def _recovery_code_used(user_id, code):
    """Whether ``code`` is one of the user's unused recovery codes; if so it is used up."""
    if len(code) != 2 * _CODE_GROUP:
        return False
    candidates = db.session.execute(
        sa.select(RecoveryCode.id, RecoveryCode.salt, RecoveryCode.code_hash)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    ).all()
    for row in candidates:
        if hmac.compare_digest(row.code_hash, _recovery_hash(row.salt, code)):
            return bool(db.session.execute(
                sa.update(RecoveryCode).where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
            ).rowcount)
    return False


def accept_code(user, code):
    """The method (``"totp"`` or ``"recovery_code"``) by which ``code`` proves the second factor
    of ``user`` (who has it on), using it up; None when it does not. Runs in the caller's use
    case, which commits the code's use."""
    credential = _credential(user.id, confirmed=True)
    normalized = _normalized(code)
    if credential is None or not normalized:
        return None
    if _totp_accepted(credential, normalized):
        return TOTP
    if _recovery_code_used(user.id, normalized):
        _record(user, "mfa.recovery_code_used", {"remaining": recovery_codes_remaining(user.id)})
        return RECOVERY_CODE
    return None


def check_second_factor(user, code):
    """For the sensitive account actions: with two-factor on, ``code`` must be a valid one
    (401 ``SecondFactorRequired`` otherwise, and nothing changes)."""
    if user.mfa_enabled and accept_code(user, code) is None:
        raise SecondFactorRequired()


def _issuer():
    return current_app.config["APP_NAME"]


@atomic
def begin_setup(user, current_password):
    """A new authenticator secret for ``user`` (replacing one not confirmed yet): ``{secret,
    otpauth_uri, qr_svg}``. Nothing is active until ``enable`` gets a code from it."""
    check_current_password(user, current_password)
    if user.mfa_enabled:
        raise MfaAlreadyEnabled()
    secret = pyotp.random_base32()
    db.session.execute(sa.delete(TotpCredential).where(TotpCredential.user_id == user.id))
    db.session.add(TotpCredential(user_id=user.id, secret_encrypted=secret_box.encrypt(secret)))
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=_issuer())
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": segno.make(uri, error="m").svg_inline(scale=4)}


@atomic
def enable(user, code):
    """Confirm the pending authenticator with a code from it: two-factor is on. Returns the
    recovery codes, shown this once."""
    if user.mfa_enabled:
        raise MfaAlreadyEnabled()
    credential = _credential(user.id, confirmed=False)
    if credential is None:
        raise NoPendingSetup()
    if not _totp_accepted(credential, _normalized(code)):
        raise WrongSetupCode()
    credential.confirmed_at = utcnow()
    user.mfa_enabled = True
    user.rotate_security_stamp()
    codes = _new_recovery_codes(user.id)
    _record(user, "mfa.enabled")
    _notify(user, "mfa_enabled")
    return codes


@atomic
def disable(user, current_password, code):
    """Turn two-factor off (the password and a code needed): the authenticator and recovery
    codes are forgotten. Refused (409) while an organization of the user requires it."""
    check_current_password(user, current_password)
    if not user.mfa_enabled:
        raise MfaNotEnabled()
    events.mfa_disabling.send(user)  # organizations that require two-factor refuse it here
    check_second_factor(user, code)
    _turn_off(user)
    _record(user, "mfa.disabled")
    _notify(user, "mfa_disabled")


@atomic
def regenerate_recovery_codes(user, current_password, code):
    """Ten new recovery codes; the old ones stop working."""
    check_current_password(user, current_password)
    if not user.mfa_enabled:
        raise MfaNotEnabled()
    check_second_factor(user, code)
    codes = _new_recovery_codes(user.id)
    _record(user, "mfa.recovery_codes_regenerated")
    return codes


@atomic
def reset(user):
    """An operator's reset, for an owner who lost both the authenticator and the recovery codes:
    two-factor off, every session ended (``account_secured``), a notice mailed."""
    if not user.mfa_enabled:
        raise MfaNotEnabled()
    _turn_off(user)
    _record(user, "admin.mfa_reset")
    _notify(user, "mfa_reset")
    events.account_secured.send(user, reason="mfa-reset")


def _turn_off(user):
    db.session.execute(sa.delete(TotpCredential).where(TotpCredential.user_id == user.id))
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    user.mfa_enabled = False
    user.rotate_security_stamp()


def _new_recovery_codes(user_id):
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(2 * _CODE_GROUP))
        salt = secrets.token_hex(16)
        db.session.add(RecoveryCode(user_id=user_id, salt=salt, code_hash=_recovery_hash(salt, raw)))
        codes.append(f"{raw[:_CODE_GROUP]}-{raw[_CODE_GROUP:]}")
    return codes


def recovery_codes_remaining(user_id):
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )


def status(user):
    """``{enabled, methods, recovery_codes_remaining}`` of the account's two-factor."""
    return {
        "enabled": user.mfa_enabled,
        "methods": list(METHODS) if user.mfa_enabled else [],
        "recovery_codes_remaining": recovery_codes_remaining(user.id) if user.mfa_enabled else 0,
    }


def _record(user, action, details=None):
    """An audit event about the account (no organization), in the use case's transaction."""
    events.account_audited.send(user, action=action, details=details or {})


def _notify(user, template):
    queue_mail(template, user.email, user_id=user.id)


def export(user):
    """What an account export shows of two-factor: never the secret or the codes."""
    credential = _credential(user.id, confirmed=True)
    return {
        "enabled": user.mfa_enabled,
        "enabled_at": credential.confirmed_at if credential is not None else None,
        "recovery_codes_remaining": recovery_codes_remaining(user.id),
    }


@atomic
def reencrypt_secrets():
    """Every stored TOTP secret encrypted again under the first key (key rotation); how many."""
    credentials = db.session.scalars(sa.select(TotpCredential)).all()
    for credential in credentials:
        credential.secret_encrypted = secret_box.reencrypt(credential.secret_encrypted)
    return len(credentials) + sum(count for _, count in secret_box.reencrypting.send(None))
