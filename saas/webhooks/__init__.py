"""Outbound webhooks: organisations subscribe endpoints to events, which are recorded with the
change they report (the outbox) and delivered by RQ jobs, signed per Standard Webhooks.

Above organisations (whose signals it hears, whose owners it mails), below everything else that
reports events (billing, usage, AI), which calls ``saas.webhooks.events`` in its transactions.
"""
from saas.webhooks.routes import blp, event_types_blp

__all__ = ["blp", "event_types_blp"]
