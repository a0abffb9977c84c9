import marshmallow as ma

from saas.billing.schemas import SubscriptionSchema
from saas.orgs.schemas import MemberSchema
from saas.usage.schemas import UsageSchema
from saas.users.schemas import UserSchema
from saas.web.fields import Text


class SearchQuerySchema(ma.Schema):
    q = Text(
        max_length=255,
        metadata={"description": "Case-insensitive part of the email or full name (users), or of the name or "
                  "slug (organizations); all when absent."},
    )


class AdminUserOrgSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    slug = ma.fields.String(required=True)
    personal = ma.fields.Boolean(required=True)
    role = ma.fields.String(required=True, metadata={"description": "The user's role there: owner, admin or member."})


class AdminUserDetailSchema(UserSchema):
    deleted_at = ma.fields.AwareDateTime(
        required=True, allow_none=True,
        metadata={"description": "When the owner deleted the account (its row stays, anonymised, for accounting)."},
    )
    organizations = ma.fields.List(
        ma.fields.Nested(AdminUserOrgSchema), required=True,
        metadata={"description": "Every organization the user belongs to, the personal one first."},
    )
    open_sessions = ma.fields.Integer(
        required=True, metadata={"description": "Login sessions neither revoked nor expired."}
    )
    api_keys = ma.fields.Integer(
        required=True, metadata={"description": "API keys the user created (in any organization) that still exist."}
    )
    subscription = ma.fields.Nested(
        SubscriptionSchema, required=True,
        metadata={"description": "Of the personal organization, as `GET /api/v1/billing/subscription` shows it."},
    )
    usage = ma.fields.Nested(
        UsageSchema, required=True, metadata={"description": "The personal organization's tokens this month."}
    )


class AdminUserUpdateSchema(ma.Schema):
    """Only the fields sent change; anything else is a 422."""

    is_active = ma.fields.Boolean(
        metadata={"description": "false disables the account and ends every session and API key at once."}
    )
    is_superuser = ma.fields.Boolean()
    email_verified = ma.fields.Boolean()


class AdminOrgSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    slug = ma.fields.String(required=True)
    personal = ma.fields.Boolean(required=True)
    plan = ma.fields.String(
        required=True, attribute="effective_plan", metadata={"description": "The plan it can use now."}
    )
    stripe_customer_id = ma.fields.String(required=True, allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)


class AdminOrgDetailSchema(AdminOrgSchema):
    members = ma.fields.List(ma.fields.Nested(MemberSchema), required=True)
    subscription = ma.fields.Nested(SubscriptionSchema, required=True)
    usage = ma.fields.Nested(UsageSchema, required=True)


class UserStatsSchema(ma.Schema):
    total = ma.fields.Integer(required=True)
    active_last_30_days = ma.fields.Integer(
        required=True,
        metadata={"description": "Users who logged in, refreshed a session or used an API key in the last 30 days."},
    )
    deactivated = ma.fields.Integer(required=True)
    superusers = ma.fields.Integer(required=True)


class SubscriptionCountSchema(ma.Schema):
    plan = ma.fields.String(required=True, allow_none=True, metadata={"description": "null: a price not in STRIPE_PLANS."})
    status = ma.fields.String(required=True)
    count = ma.fields.Integer(required=True)


class TokenStatsSchema(ma.Schema):
    used = ma.fields.Integer(required=True, metadata={"description": "Tokens of the calls settled this month."})
    reserved = ma.fields.Integer(required=True, metadata={"description": "Tokens held by calls in progress."})
    period_start = ma.fields.AwareDateTime(required=True)


class StatsSchema(ma.Schema):
    users = ma.fields.Nested(UserStatsSchema, required=True)
    subscriptions = ma.fields.List(
        ma.fields.Nested(SubscriptionCountSchema), required=True,
        metadata={"description": "Every subscription stored, counted by plan and Stripe status."},
    )
    ai_tokens = ma.fields.Nested(
        TokenStatsSchema, required=True, metadata={"description": "Every organization's AI tokens this month (UTC)."}
    )
