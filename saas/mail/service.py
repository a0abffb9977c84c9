"""The one door through which the app sends mail.

``queue_mail`` stores the message (``MailMessage``) and queues ``deliver`` on the ``high`` queue;
without Redis the message is sent after the response, never inside it. ``deliver`` mints the
message's link (``register_link``), renders the templates and hands the message to the backend
(``MAIL_BACKEND``); a failure is retried with backoff, and a message whose job Redis lost is
queued again by the worker's sweep (``resend_unsent``): a message is never lost, only late.
"""
import functools
import logging
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from saas.core.database import after_commit, atomic, transaction
from saas.core.ids import new_uuid
from saas.core.queue import HIGH, enqueue, job_app_context, job_id, job_is_lost
from saas.core.time import utcnow
from saas.extensions import db
from saas.mail.backends import MailNotSent, backend_for
from saas.mail.models import CANCELLED, PENDING, SENT, MailMessage
from saas.mail.rendering import render

log = logging.getLogger(__name__)

# A message still unsent after this long is given up on (the sweep stops queueing it again).
GIVE_UP_AFTER = timedelta(days=7)

_LINKS = {}


def register_link(kind, build):
    """``build(message)`` returns the template values of a message's link (``{"link": url}``)
    minted now, or None when the message no longer makes sense (the account was deactivated,
    the address changed): it is then cancelled, not sent."""
    _LINKS[kind] = build


def queue_mail(template, to, *, user_id=None, context=None, link=None):
    """Store the message in the caller's use case (its own when there is none) and queue its
    sending once that commits; returns the stored message. A change that rolls back sends
    nothing. If Redis cannot be reached the message waits in the database for the worker's next
    sweep: the caller's work never fails because mail could not be queued.
    """
    if link is not None and link not in _LINKS:
        raise ValueError(f"unknown link kind {link!r}")
    message = MailMessage(
        id=new_uuid(), template=template, to_address=to, user_id=user_id, context=context or {}, link=link
    )
    with transaction():
        db.session.add(message)
        after_commit(functools.partial(_queue_delivery, message.id))
    return message


def _queue_delivery(message_id):
    try:
        enqueue(deliver, message_id, queue=HIGH, job_id=job_id("mail", message_id))
    except RedisError:
        log.warning("mail %s waits in the database: Redis is unavailable; the worker's sweep sends it", message_id)


@job_app_context
def deliver(message_id):
    """Send one stored message, unless it was sent or cancelled already. A failure is recorded
    on the message and raised, so RQ retries it."""
    failure = _deliver(message_id)
    if failure is not None:  # recorded, and committed: now RQ retries it
        log.warning("mail not sent; retried later: %s", failure, extra={"mail_id": message_id})
        raise failure


@atomic
def _deliver(message_id):
    """One attempt; the MailNotSent it met, once recorded on the message, or None."""
    message = db.session.get(MailMessage, message_id)
    if message is None or message.status != PENDING:
        return
    values = dict(message.context)
    if message.link is not None:
        # Minting a link may write (an invitation stores its new token's hash): it commits with
        # the message's new state, or, if sending fails, with its failure only.
        link = _LINKS[message.link](message)
        if link is None:
            message.status = CANCELLED
            log.info("mail cancelled", extra={"mail_id": message.id, "template": message.template})
            return
        values.update(link)
    message.attempts += 1
    try:
        send_now(message.to_address, message.template, values)
    except MailNotSent as error:
        message.last_error = str(error)[:255]
        return error
    message.status, message.sent_at, message.last_error = SENT, utcnow(), None
    log.info("mail sent", extra={"mail_id": message.id, "template": message.template})
    return None


def send_now(to, template, values):
    """Render and hand over one message at once (``flask mail send-test``; jobs use ``deliver``);
    returns the server's answer."""
    rendered = render(template, values)
    return backend_for(current_app.config).send(_email(to, rendered))


def _email(to, rendered):
    sender = current_app.config["MAIL_FROM"]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def resend_unsent(created_before, limit=None):
    """Queue again the messages still pending whose job is gone (Redis lost it, or it used up
    its retries), younger than GIVE_UP_AFTER. Returns how many were queued."""
    query = (
        sa.select(MailMessage.id)
        .where(
            MailMessage.status == PENDING,
            MailMessage.created_at < created_before,
            MailMessage.created_at > utcnow() - GIVE_UP_AFTER,
        )
        .order_by(MailMessage.created_at)
        .limit(limit)
    )
    queued = 0
    for message_id in db.session.scalars(query).all():
        if job_is_lost(job_id("mail", message_id)):
            _queue_delivery(message_id)
            queued += 1
    return queued


def forget_mail_of(user_id, address):
    """Delete every message about the account, and those to its address that are about no
    account (a deleted account's); the caller commits. Messages of another account that once had
    the address stay: they are that account's."""
    db.session.execute(
        sa.delete(MailMessage).where(
            sa.or_(MailMessage.user_id == user_id,
                   sa.and_(MailMessage.user_id.is_(None), MailMessage.to_address == address))
        )
    )


def mail_of(user_id):
    """What was mailed to or about the account, for its export (never a link: none is stored).
    Found by the account, never by the address, which another account may have had before."""
    messages = db.session.scalars(sa.select(MailMessage).where(MailMessage.user_id == user_id).order_by(MailMessage.created_at))
    return [
        {"template": message.template, "to": message.to_address, "status": message.status,
         "created_at": message.created_at, "sent_at": message.sent_at}
        for message in messages
    ]
