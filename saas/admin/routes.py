"""The operators' API: every endpoint needs a superuser's login session (never an API key)."""
from saas.admin import service
from saas.admin.schemas import (
    AdminOrgDetailSchema,
    AdminOrgSchema,
    AdminUserDetailSchema,
    AdminUserUpdateSchema,
    SearchQuerySchema,
    StatsSchema,
)
from saas.orgs.schemas import AuditEventSchema
from saas.users.schemas import UserSchema
from saas.web.api import SESSION
from saas.web.blueprint import ApiBlueprint, current_principal

blp = ApiBlueprint(
    "admin", __name__, url_prefix="/admin",
    description="For operators: users, organizations, figures and the admin audit log. Superusers only, with a "
    "login session (API keys get 401, other users 403).",
)


@blp.route("/users", methods=["GET"])
@blp.auth(SESSION, superuser=True)
@blp.arguments(SearchQuerySchema, location="query")
@blp.response(200, UserSchema(many=True))
@blp.paginate()
def list_users(query, pagination_parameters):
    """Find users: `q` matches part of the email or full name, in any case. Newest first,
    paginated with `page` and `page_size` (default 10, at most 100); totals in `X-Pagination`."""
    return service.users_page(query.get("q"), pagination_parameters)


@blp.route("/users/<int:user_id>", methods=["GET"])
@blp.auth(SESSION, superuser=True)
@blp.response(200, AdminUserDetailSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_user(user_id):
    """One user, with their organizations and role in each, how many login sessions are open,
    how many API keys they hold, and their personal organization's subscription and usage this month."""
    return service.user_details(user_id)


@blp.route("/users/<int:user_id>", methods=["PATCH"])
@blp.auth(SESSION, superuser=True)
@blp.arguments(AdminUserUpdateSchema)
@blp.response(200, AdminUserDetailSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def update_user(changes, user_id):
    """Enable or disable an account, grant or withdraw superuser rights, mark the address
    verified or not; only the fields sent change.

    `is_active: false` ends every session and API key of the user at once (reactivating does
    not bring them back). A superuser cannot deactivate or demote themselves (409). Each change
    is recorded in the admin audit log with who made it and from where.
    """
    service.update_user(current_principal().user.id, user_id, changes)
    return service.user_details(user_id)


@blp.route("/users/<int:user_id>/logout-all", methods=["POST"])
@blp.auth(SESSION, superuser=True)
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def logout_all(user_id):
    """End every login session of the user at once (their tokens then get 401); their API keys
    keep working (disable the account to end those too). Recorded in the admin audit log."""
    service.log_out_everywhere(user_id)


@blp.route("/orgs", methods=["GET"])
@blp.auth(SESSION, superuser=True)
@blp.arguments(SearchQuerySchema, location="query")
@blp.response(200, AdminOrgSchema(many=True))
@blp.paginate()
def list_orgs(query, pagination_parameters):
    """Find organizations (personal ones included): `q` matches part of the name or slug, in any
    case. Newest first, paginated like `GET /admin/users`."""
    return service.orgs_page(query.get("q"), pagination_parameters)


@blp.route("/orgs/<int:org_id>", methods=["GET"])
@blp.auth(SESSION, superuser=True)
@blp.response(200, AdminOrgDetailSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_org(org_id):
    """One organization, with its members and their roles, its subscription and its usage this month."""
    return service.org_details(org_id)


@blp.route("/stats", methods=["GET"])
@blp.auth(SESSION, superuser=True)
@blp.response(200, StatsSchema)
def stats():
    """Figures: users (total; active in the last 30 days, meaning they logged in, refreshed a
    session or used an API key then; deactivated; superusers), every stored subscription counted
    by plan and Stripe status, and the AI tokens used and held this month (UTC) across all
    organizations."""
    return service.stats()


@blp.route("/audit-log", methods=["GET"])
@blp.auth(SESSION, superuser=True)
@blp.response(200, AuditEventSchema(many=True))
@blp.paginate()
def audit_log(pagination_parameters):
    """What superusers did through this API (`admin.*` events: who, what, to whom, from which
    address), newest first, paginated like `GET /admin/users`."""
    return service.audit_page(pagination_parameters)
