"""What a role may do in an organization: every permission the gate checks, as a named constant.

A view names the permission it needs (``@blp.auth(SESSION, org="path",
permission=Permission.MEMBERS_INVITE)``); a misspelt one is an AttributeError when the module is
imported, and the gate refuses anything that is not a ``Permission`` when the view is decorated.
Which role holds which is ``saas/orgs/roles.py``; each operation's permission is in its OpenAPI
description and ``x-permission``, and the docs' role table is generated from both.
"""
from enum import StrEnum


class Permission(StrEnum):
    """A permission: its value is the name clients see (``x-permission``, 403 errors); its
    ``description`` says what it allows, for the docs."""

    def __new__(cls, value, description):
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    ORG_READ = "org.read", "See the organization, and leave it."
    ORG_UPDATE = "org.update", "Rename the organization."
    ORG_SECURITY = "org.security", "Require two-factor authentication of the members, or stop requiring it."
    ORG_DELETE = "org.delete", "Delete the organization."
    MEMBERS_READ = "members.read", "List the members and their roles."
    MEMBERS_INVITE = "members.invite", "Invite people by email; list and revoke pending invitations."
    MEMBERS_REMOVE = "members.remove", "Remove members (an owner only by an owner)."
    MEMBERS_ROLE = "members.role", "Change members' roles (granting or taking `owner` needs an owner)."
    API_KEYS_MANAGE = "api_keys.manage", "Create, list and revoke the organization's API keys."
    AUDIT_READ = "audit.read", "Read the organization's audit log."
    AI_USE = "ai.use", "Call the AI endpoints against the organization's quota."
    USAGE_READ = "usage.read", "Read the organization's token usage (each member's with their own address only)."
    USAGE_READ_MEMBERS = "usage.read_members", "See who each member is in the usage by member."
    SUBSCRIPTION_READ = "subscription.read", "Read the organization's subscription."
    BILLING_MANAGE = "billing.manage", "Check out, open the billing portal and change the plan."
    WEBHOOKS_MANAGE = "webhooks.manage", (
        "Add, change, test and delete the organization's webhook endpoints, rotate their secrets, read and "
        "retry their deliveries."
    )
