"""Standard Webhooks signatures (standardwebhooks.com), made with the reference package.

A secret reads ``whsec_<base64 of 24 random bytes>``. Each attempt is signed at its own time:
``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per secret in
use, separated by spaces (during a rotation's overlap: the new secret's, then the old one's), and
any Standard Webhooks library accepts the message when one of them matches its secret.
"""
import base64
import secrets
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret():
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(event_id, body, signing_secrets, *, now=None):
    """The three Standard Webhooks headers of one attempt to send ``body`` (text)."""
    moment = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    signatures = " ".join(Webhook(secret).sign(event_id, moment, body) for secret in signing_secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signatures,
    }
