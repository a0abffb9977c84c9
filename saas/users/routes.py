"""The current user's own account."""
from flask_jwt_extended import current_user, get_jwt, jwt_required
from flask_smorest import Blueprint

from saas.api import BEARER_SCHEME
from saas.apikeys.auth import TOKEN_OR_API_KEY, jwt_or_api_key_required
from saas.auth.limits import password_check_limit
from saas.users.schemas import UserSchema, UserUpdateSchema
from saas.users.service import update_user

# The cross-field rule of UserUpdateSchema, stated for the OpenAPI document (3.0 has no
# dependentRequired): without `password`, or with both `password` and `current_password`.
PASSWORD_NEEDS_CURRENT = {
    "anyOf": [{"not": {"required": ["password"]}}, {"required": ["password", "current_password"]}]
}

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="The current user.")


@blp.route("/me", methods=["GET"])
@blp.response(200, UserSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.doc(security=TOKEN_OR_API_KEY)
@jwt_or_api_key_required()
def get_me():
    """The user the access token (or API key) belongs to."""
    return current_user


@blp.route("/me", methods=["PATCH"])
@password_check_limit
@blp.arguments(UserUpdateSchema, required=False)
@blp.response(200, UserSchema)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@blp.doc(
    security=[{BEARER_SCHEME: []}],
    requestBody={
        "content": {"application/json": {"schema": {"allOf": [UserUpdateSchema, PASSWORD_NEEDS_CURRENT]}}}
    },
)
@jwt_required()
def update_me(changes):
    """Change `full_name`, or the password.

    A password change needs `current_password` and ends every other session of the user;
    the session making the change stays open. Other fields cannot be changed here (422).
    Only the fields sent change; an empty or absent body changes nothing. Wrong current
    passwords are rate limited per user like failed logins.
    """
    return update_user(current_user, changes, current_session_id=get_jwt()["sid"])
