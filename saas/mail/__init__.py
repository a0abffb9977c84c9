"""Outgoing mail: templates, the outbox, the job that sends, the SMTP and console backends."""
import logging

from saas.mail.service import queue_mail, register_link  # noqa: F401

log = logging.getLogger("saas.mail")


def init_mail(app):
    if app.config["APP_ENV"] == "production" and app.config["MAIL_BACKEND"] == "console":
        log.warning(
            "MAIL_BACKEND is console: messages, links included, are written to the log and "
            "never sent; set SMTP_HOST (and SMTP_USERNAME/SMTP_PASSWORD) to send mail"
        )
