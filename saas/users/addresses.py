"""Verified addresses: the verification message, the link that verifies, and email changes.

One endpoint takes both kinds of link. A verification link names the account and (by a keyed
digest) its address: if that is still the account's address, it is verified. A change link names
the account and the stored change message, which holds the new address and the old one: if the
account still has the old one, the address changes to the new one, verified. Posting a used link
again changes nothing. No token carries an address.
"""
import sqlalchemy as sa
from flask import current_app

from saas.core.errors import InvalidInput
from saas.extensions import db
from saas.mail import queue_mail, register_link
from saas.mail.models import MailMessage
from saas.users import events
from saas.users.models import User
from saas.users.passwords import verify_password
from saas.users.service import EmailTaken, WrongCurrentPassword, commit_unless_email_taken
from saas.users.tokens import EMAIL_VERIFY, InvalidToken, address_fingerprint, mint, read

LINK_VERIFY, LINK_CHANGE = "email-verify", "email-change"
CHANGE_TEMPLATE = "email_change"


def _hours():
    return current_app.config["EMAIL_VERIFY_TOKEN_HOURS"]


def _url(token):
    config = current_app.config
    return f"{config['FRONTEND_URL'].rstrip('/')}{config['EMAIL_VERIFY_PATH']}?token={token}"


def send_verification(user):
    """Queue a verification message to the user's address (a new link each time)."""
    queue_mail("verify_email", user.email, user_id=user.id, link=LINK_VERIFY, context={"hours": _hours()})


def request_email_change(user, new_email, current_password):
    """Send a confirmation link to ``new_email`` and a notice to the current address; the
    address changes when the link is used."""
    if not verify_password(current_password, user.hashed_password):
        raise WrongCurrentPassword()
    if new_email == user.email:
        raise InvalidInput(field="email", reason="This is already the account's email address.")
    if _taken(new_email, user.id):
        raise EmailTaken()
    queue_mail(
        CHANGE_TEMPLATE, new_email, user_id=user.id, link=LINK_CHANGE,
        context={"hours": _hours(), "from": user.email},
    )
    queue_mail("email_change_notice", user.email, user_id=user.id, context={"new_email": new_email})


def verify_email(token):
    """Verify the address, or make the change, that ``token`` was minted for."""
    payload = read(EMAIL_VERIFY, token, _hours() * 3600)
    user = db.session.get(User, payload["uid"])
    if user is None or not user.is_active:
        raise InvalidToken()
    if "change" in payload:
        return _change_address(user, payload["change"])
    if payload.get("address") != address_fingerprint(user.email):
        raise InvalidToken("The link is for an address this account no longer has; ask for a new one.")
    if not user.email_verified:
        user.email_verified = True
        db.session.commit()
    return user


def _change_address(user, message_id):
    change = db.session.get(MailMessage, message_id) if isinstance(message_id, str) else None
    if change is None or change.user_id != user.id or change.template != CHANGE_TEMPLATE:
        raise InvalidToken()
    new_email, old_email = change.to_address, change.context["from"]
    if user.email == new_email:
        return user  # this link was used already
    if user.email != old_email:
        raise InvalidToken("The account's address changed since this link was sent; ask for a new one.")
    if _taken(new_email, user.id):
        raise EmailTaken()
    user.email, user.email_verified = new_email, True
    commit_unless_email_taken()
    events.email_changed.send(user)
    return user


def _taken(email, user_id):
    return db.session.scalar(sa.select(User.id).where(User.email == email, User.id != user_id)) is not None


def _verification_link(message):
    user = db.session.get(User, message.user_id)
    if user is None or not user.is_active or user.email != message.to_address or user.email_verified:
        return None  # verified meanwhile, or the address changed: nothing to confirm
    return {"link": _url(mint(EMAIL_VERIFY, {"uid": user.id, "address": address_fingerprint(user.email)}))}


def _change_link(message):
    user = db.session.get(User, message.user_id)
    if user is None or not user.is_active or user.email != message.context["from"]:
        return None  # the account's address changed since the request
    return {"link": _url(mint(EMAIL_VERIFY, {"uid": user.id, "change": message.id}))}


def _verify_new_account(user, **_):
    # An operator's account made by `flask users create-superuser` is verified already.
    if not user.email_verified:
        send_verification(user)


def connect_mail():
    """The links these messages carry, and a verification message for every new account."""
    register_link(LINK_VERIFY, _verification_link)
    register_link(LINK_CHANGE, _change_link)
    events.user_registered.connect(_verify_new_account, weak=False)
