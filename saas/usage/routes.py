"""The current user's token usage against their plan's monthly quota."""
from saas.usage.schemas import UsageSchema
from saas.usage.service import quota_status
from saas.web.api import API_KEY, SESSION
from saas.web.blueprint import Blueprint, current_principal

blp = Blueprint("usage", __name__, url_prefix="/usage", description="Token usage and quotas.")


@blp.route("", methods=["GET"])
@blp.auth(SESSION, API_KEY)
@blp.doc(operationId="usage_get")
@blp.response(200, UsageSchema)
def get_usage():
    """Tokens used, held and left this month, the plan's quota and when it resets.

    Quotas come from PLAN_QUOTAS; the period is the calendar month in UTC.
    """
    return quota_status(current_principal().user)
