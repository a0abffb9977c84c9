"""Organizations (teams): members with roles, invitations by email, the audit log.

Above users, below everything that belongs to an organization (API keys, billing, usage, AI):
those packages scope their endpoints with ``@blp.auth(..., org=..., permission=...)`` and react
to ``saas.orgs.events``.
"""
from saas.orgs.routes import blp, invitations_blp

__all__ = ["blp", "invitations_blp"]
