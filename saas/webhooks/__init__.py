"""Outbound webhooks: organizations subscribe endpoints to events, which are recorded with the
change they report (the outbox) and delivered by RQ jobs, signed per Standard Webhooks.

Above organizations (whose signals it hears, whose owners it mails), below everything else that
reports events (billing, usage, AI), which calls ``saas.webhooks.events`` in its transactions.
"""
import logging

from saas.webhooks.routes import blp, event_types_blp

__all__ = ["blp", "event_types_blp", "init_webhooks"]

log = logging.getLogger("saas.webhooks")


def init_webhooks(app):
    if app.config["APP_ENV"] == "production" and app.config["WEBHOOKS_ALLOW_LOOPBACK"]:
        log.warning(
            "WEBHOOKS_ALLOW_LOOPBACK is true: webhook endpoints may be http:// and on this machine's loopback "
            "addresses; it is meant for development and tests"
        )
