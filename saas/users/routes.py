"""The current user's own account."""
from saas.users.addresses import request_email_change
from saas.users.limits import email_send_limit, password_check_limit
from saas.users.schemas import (
    AcceptedSchema,
    AccountDeletionSchema,
    AccountExportSchema,
    EmailChangeSchema,
    UserSchema,
    UserUpdateSchema,
)
from saas.users.service import delete_account, export_account, update_profile
from saas.web.api import API_KEY, SESSION
from saas.web.blueprint import ApiBlueprint, current_principal

# The cross-field rule of UserUpdateSchema, stated for the OpenAPI document (3.0 has no
# dependentRequired): without `password`, or with both `password` and `current_password`.
PASSWORD_NEEDS_CURRENT = {
    "anyOf": [{"not": {"required": ["password"]}}, {"required": ["password", "current_password"]}]
}

blp = ApiBlueprint("users", __name__, url_prefix="/users", description="The current user.")


@blp.route("/me", methods=["GET"])
@blp.auth(SESSION, API_KEY)
@blp.response(200, UserSchema)
def get_me():
    """The user the access token (or API key) belongs to."""
    return current_principal().user


@blp.route("/me", methods=["PATCH"])
@blp.auth(SESSION, limits=[password_check_limit])
@blp.arguments(UserUpdateSchema, required=False)
@blp.response(200, UserSchema)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@blp.doc(requestBody={"content": {"application/json": {"schema": {"allOf": [UserUpdateSchema, PASSWORD_NEEDS_CURRENT]}}}})
def update_me(changes):
    """Change `full_name`, or the password.

    A password change needs `current_password` (400 when wrong) and, with two-factor on, a
    `code` (401 when missing or wrong); it ends every other session of the user and revokes
    their API keys; the session making the change stays open. An account without a password
    (made by a social login, `has_password` false) gets a 409: it sets one with a password
    reset. Other fields cannot be changed here (422). Only the fields sent change; an empty or
    absent body changes nothing. Wrong current passwords are rate limited per user like failed
    logins.
    """
    principal = current_principal()
    return update_profile(principal.user, changes, keep_session_id=principal.session_id)


@blp.route("/me/email", methods=["POST"])
@blp.auth(SESSION, limits=[password_check_limit, email_send_limit])
@blp.arguments(EmailChangeSchema)
@blp.response(202, AcceptedSchema)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def change_email(fields):
    """Change the account's email address: needs the current password (and, with two-factor on,
    a `code`: 401 when missing or wrong). An account without a password gets a 409: it sets one
    with a password reset first.

    A link goes to the new address and a notice to the current one; the address changes, and
    counts as verified, when the link is posted to `POST /api/v1/auth/verify-email`. A new
    address that another account has is a 409 (checked again then). Rate limited per user.
    """
    request_email_change(current_principal().user, fields["email"], fields["current_password"], fields.get("code"))
    return {"message": "Confirm the change with the link sent to the new address."}


@blp.route("/me", methods=["DELETE"])
@blp.auth(SESSION, limits=[password_check_limit])
@blp.arguments(AccountDeletionSchema)
@blp.response(204)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def delete_me(fields):
    """Delete the account: needs the current password (and, with two-factor on, a `code`: 401 when
    missing or wrong). An account without a password gets a 409: it sets one with a password
    reset first.

    In one transaction: every session ends and every API key the user created is deleted, they
    leave every organization, their AI jobs and mail are deleted, and the account's row is
    anonymised (no email, name or password remain). Usage and billing records are kept, for
    accounting, without personal data. The subscriptions of their personal organization are then
    canceled in Stripe by the worker. Refused (409) while the user is the last owner of a team
    organization: make someone else an owner, or delete it, first.
    """
    delete_account(current_principal().user, fields["current_password"], fields.get("code"))


@blp.route("/me/export", methods=["GET"])
@blp.auth(SESSION)
@blp.response(200, AccountExportSchema)
def export_me():
    """Everything stored about the caller, as one JSON document: profile, sessions, API keys
    (metadata), organizations, invitations, audit events as actor, subscriptions, usage, AI jobs
    and mail. Needs a login session (not an API key)."""
    return export_account(current_principal().user)
