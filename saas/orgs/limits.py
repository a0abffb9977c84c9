"""Rate limits of the organization endpoints (INVITATION_SEND_LIMIT), in flask-limiter's storage
(Redis) like every limit.

Invitations send mail to addresses the sender chooses, so they are counted per sender (across
their organizations) and per organization (whoever of its admins sends). The organization's
counter is the one the gate admitted the caller to: anyone else's attempts count against their
own, never against an organization they are not an admin of.
"""
from flask import current_app, g

from saas.extensions import limiter
from saas.web.requests import never_raises, principal_or_ip_key


def _invitation_send_limit():
    return current_app.config["INVITATION_SEND_LIMIT"]


@never_raises(fallback=principal_or_ip_key)
def organization_key():
    principal = g.get("principal")
    if principal is None or principal.org is None:
        return principal_or_ip_key()
    return f"org:{principal.org.id}"


invitation_sender_limit = limiter.limit(
    _invitation_send_limit, key_func=principal_or_ip_key, scope="invitation-sender", override_defaults=False
)
invitation_org_limit = limiter.limit(
    _invitation_send_limit, key_func=organization_key, scope="invitation-org", override_defaults=False
)
