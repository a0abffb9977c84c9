"""Token usage against the plan's monthly quota: of the organization a call acts for, and of
an organization by member."""
from saas.core.permissions import Permission
from saas.orgs.roles import can
from saas.usage.schemas import OrgUsageSchema, UsageSchema
from saas.usage.service import quota_status, usage_by_member
from saas.web.api import API_KEY, SESSION
from saas.web.blueprint import ApiBlueprint, current_principal

blp = ApiBlueprint("usage", __name__, url_prefix="/usage", description="Token usage and quotas.")
org_usage_blp = ApiBlueprint(
    "org_usage", __name__, url_prefix="/orgs", description="An organization's token usage, by member."
)


@blp.route("", methods=["GET"])
@blp.auth(SESSION, API_KEY, org="acting", permission=Permission.USAGE_READ)
@blp.doc(operationId="usage_get")
@blp.response(200, UsageSchema)
def get_usage():
    """Tokens used, held and left this month, the plan's quota and when it resets.

    For the organization the call acts for: an organization's API key's, the one `X-Org-Id`
    names, else the caller's personal organization. Quotas come from PLAN_QUOTAS; the period is
    the calendar month in UTC.
    """
    return quota_status(current_principal().org)


@org_usage_blp.route("/<int:org_id>/usage", methods=["GET"])
@org_usage_blp.auth(SESSION, org="path", permission=Permission.USAGE_READ)
@org_usage_blp.response(200, OrgUsageSchema)
def get_org_usage(org_id):
    """The organization's usage this month (as `GET /api/v1/usage`), and each member's share.

    Admins and owners see who each member is; other members see their own address and name,
    and the others' user ids only (`email` and `full_name` null).
    """
    principal = current_principal()
    status = quota_status(principal.org)
    members = usage_by_member(
        principal.org, viewer_id=principal.user_id, with_addresses=can(principal.role, Permission.USAGE_READ_MEMBERS),
    )
    return {**{name: getattr(status, name) for name in UsageSchema().fields}, "members": members}
