"""What each role may do in an organisation. The gate checks these by name
(``@blp.auth(SESSION, org="path", permission="members.invite")``); the services check the rules
that depend on whom an action is about (only an owner acts on owners, the last owner stays)."""
from saas.orgs.models import ADMIN, MEMBER, OWNER

MEMBER_PERMISSIONS = frozenset({"org.read", "members.read", "ai.use", "usage.read", "subscription.read"})
ADMIN_PERMISSIONS = MEMBER_PERMISSIONS | {
    "org.update", "members.invite", "members.remove", "members.role", "api_keys.manage", "audit.read",
    "usage.read_members",  # each member's usage with their address and name (others see their own)
    "webhooks.manage",
}
OWNER_PERMISSIONS = ADMIN_PERMISSIONS | {"billing.manage", "owners.manage", "org.delete"}

PERMISSIONS = {MEMBER: MEMBER_PERMISSIONS, ADMIN: ADMIN_PERMISSIONS, OWNER: OWNER_PERMISSIONS}
ALL_PERMISSIONS = OWNER_PERMISSIONS


def can(role, permission):
    return permission in PERMISSIONS.get(role, ())
