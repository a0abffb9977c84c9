"""Verified addresses: the verification message, the link that verifies, and email changes.

One endpoint takes both kinds of link. A verification link names the account and (by a keyed
digest) its address: if that is still the account's address, it is verified. A change link names
the account and the stored change message, which holds the new address and the old one: if the
account still has the old one and that message is its latest change request, the address
changes to the new one, verified. Both are bound to the account's security stamp
(``saas.users.tokens``): a change link works once (the change gives the account a new stamp),
and any security change of the account voids every pending link. No token carries an address.
"""
import sqlalchemy as sa
from flask import current_app

from saas.core.database import atomic
from saas.core.errors import InvalidInput
from saas.extensions import db
from saas.mail import queue_mail, register_link
from saas.mail.models import MailMessage
from saas.users import events
from saas.users.models import User
from saas.users import mfa
from saas.users.passwords import check_current_password
from saas.users.service import EmailTaken, flush_unless_email_taken
from saas.users.tokens import (
    EMAIL_VERIFY, InvalidToken, StaleLink, address_fingerprint, issued_stamp, may_still_mint, mint_link, read_link,
)

LINK_VERIFY, LINK_CHANGE = "email-verify", "email-change"
CHANGE_TEMPLATE = "email_change"


def _hours():
    return current_app.config["EMAIL_VERIFY_TOKEN_HOURS"]


def _url(token):
    config = current_app.config
    return f"{config['FRONTEND_URL'].rstrip('/')}{config['EMAIL_VERIFY_PATH']}?token={token}"


def send_verification(user):
    """Queue a verification message to the user's address (a new link each time)."""
    queue_mail(
        "verify_email", user.email, user_id=user.id, link=LINK_VERIFY,
        context={"hours": _hours(), "stamp": issued_stamp(user)},
    )


@atomic
def request_email_change(user, new_email, current_password, code=None):
    """Send a confirmation link to ``new_email`` and a notice to the current address; the
    address changes when the link is used. Needs the current password, and a second-factor code
    when two-factor is on."""
    check_current_password(user, current_password)
    mfa.check_second_factor(user, code)
    if new_email == user.email:
        raise InvalidInput(field="email", reason="This is already the account's email address.")
    if _taken(new_email, user.id):
        raise EmailTaken()
    queue_mail(
        CHANGE_TEMPLATE, new_email, user_id=user.id, link=LINK_CHANGE,
        context={"hours": _hours(), "from": user.email, "stamp": issued_stamp(user)},
    )
    queue_mail("email_change_notice", user.email, user_id=user.id, context={"new_email": new_email})


@atomic
def verify_email(token):
    """Verify the address, or make the change, that ``token`` was minted for."""
    user, claims = read_link(EMAIL_VERIFY, token, _hours() * 3600)
    if "change" in claims:
        return _change_address(user, claims["change"])
    if claims.get("address") != address_fingerprint(user.email):
        raise InvalidToken("The link is for an address this account no longer has; ask for a new one.")
    user.email_verified = True
    return user


def _change_address(user, message_id):
    change = db.session.get(MailMessage, message_id) if isinstance(message_id, str) else None
    if change is None or change.user_id != user.id or change.template != CHANGE_TEMPLATE:
        raise InvalidToken()
    if change.id != _latest_change_id(user.id):
        raise StaleLink("A newer email change was asked for since this link was sent; use the latest link.")
    new_email, old_email = change.to_address, change.context["from"]
    if user.email != old_email:
        raise InvalidToken("The account's address changed since this link was sent; ask for a new one.")
    if _taken(new_email, user.id):
        raise EmailTaken()
    user.email, user.email_verified = new_email, True
    user.rotate_security_stamp()  # this link, and every other one mailed before, is used up
    flush_unless_email_taken()
    events.email_changed.send(user)
    return user


def _latest_change_id(user_id):
    """The account's most recent email change request: only its link may make the change."""
    return db.session.scalar(
        sa.select(MailMessage.id)
        .where(MailMessage.user_id == user_id, MailMessage.template == CHANGE_TEMPLATE)
        .order_by(MailMessage.created_at.desc())
        .limit(1)
    )


def _taken(email, user_id):
    return db.session.scalar(sa.select(User.id).where(User.email == email, User.id != user_id)) is not None


def _verification_link(message):
    user = db.session.get(User, message.user_id)
    if not may_still_mint(user, message.context.get("stamp")) or user.email != message.to_address or user.email_verified:
        return None  # verified meanwhile, the address changed, or the account's security did
    token = mint_link(EMAIL_VERIFY, user, issued_stamp(user), address=address_fingerprint(user.email))
    return {"link": _url(token)}


def _change_link(message):
    user = db.session.get(User, message.user_id)
    if not may_still_mint(user, message.context.get("stamp")) or user.email != message.context["from"]:
        return None  # the account's address or security changed since the request
    if message.id != _latest_change_id(user.id):
        return None  # a newer change was asked for
    return {"link": _url(mint_link(EMAIL_VERIFY, user, issued_stamp(user), change=message.id))}


def _verify_new_account(user, **_):
    # An operator's account made by `flask users create-superuser` is verified already.
    if not user.email_verified:
        send_verification(user)


def connect_mail():
    """The links these messages carry, and a verification message for every new account."""
    register_link(LINK_VERIFY, _verification_link)
    register_link(LINK_CHANGE, _change_link)
    events.user_registered.connect(_verify_new_account, weak=False)
