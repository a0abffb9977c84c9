"""What each role may do in an organization: the permissions (``saas.core.permissions``) each
role holds. The gate checks them by name (``@blp.auth(SESSION, org="path",
permission=Permission.MEMBERS_INVITE)``); the services check the rules that depend on whom an
action is about (only an owner acts on owners, the last owner stays), under the organization's
lock (``saas.orgs.service.locked_role``)."""
from saas.core.permissions import Permission
from saas.orgs.models import ADMIN, MEMBER, OWNER

MEMBER_PERMISSIONS = frozenset({
    Permission.ORG_READ, Permission.MEMBERS_READ, Permission.AI_USE, Permission.USAGE_READ,
    Permission.SUBSCRIPTION_READ,
})
ADMIN_PERMISSIONS = MEMBER_PERMISSIONS | {
    Permission.ORG_UPDATE, Permission.MEMBERS_INVITE, Permission.MEMBERS_REMOVE, Permission.MEMBERS_ROLE,
    Permission.API_KEYS_MANAGE, Permission.AUDIT_READ, Permission.USAGE_READ_MEMBERS, Permission.WEBHOOKS_MANAGE,
}
OWNER_PERMISSIONS = ADMIN_PERMISSIONS | {Permission.BILLING_MANAGE, Permission.ORG_SECURITY, Permission.ORG_DELETE}

PERMISSIONS = {MEMBER: MEMBER_PERMISSIONS, ADMIN: ADMIN_PERMISSIONS, OWNER: OWNER_PERMISSIONS}
ALL_PERMISSIONS = frozenset(Permission)


def can(role, permission):
    """Whether ``role`` holds ``permission`` (a ``Permission``: a string is refused, so a typo
    cannot quietly deny everyone)."""
    if not isinstance(permission, Permission):
        raise TypeError(f"can() takes a Permission, not {permission!r}")
    return permission in PERMISSIONS.get(role, ())
