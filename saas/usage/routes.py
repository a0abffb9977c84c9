"""The current user's token usage against their plan's monthly quota."""
from flask_jwt_extended import current_user
from flask_smorest import Blueprint

from saas.apikeys.auth import TOKEN_OR_API_KEY, jwt_or_api_key_required
from saas.usage.schemas import UsageSchema
from saas.usage.service import quota_status

blp = Blueprint("usage", __name__, url_prefix="/api/v1/usage", description="Token usage and quotas.")


@blp.route("", methods=["GET"])
@jwt_or_api_key_required()
@blp.response(200, UsageSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.doc(security=TOKEN_OR_API_KEY)
def get_usage():
    """Tokens used, held and left this month, the plan's quota and when it resets.

    Quotas come from PLAN_QUOTAS; the period is the calendar month in UTC.
    """
    return quota_status(current_user)
