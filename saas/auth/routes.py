"""Registration, login, refresh and logout."""
from flask import request

from saas.auth import service
from saas.auth.limits import (
    login_account_limit,
    login_ip_limit,
    password_reset_account_limit,
    password_reset_ip_limit,
    refresh_ip_limit,
    register_ip_limit,
)
from saas.auth.schemas import (
    LoginSchema,
    OAuth2PasswordFormSchema,
    PasswordResetConfirmSchema,
    PasswordResetSchema,
    RefreshSchema,
    RegisterSchema,
    TokenSchema,
    VerifyEmailSchema,
)
from saas.users.addresses import send_verification, verify_email
from saas.users.limits import email_send_limit
from saas.users.recovery import ask_for_password_reset, reset_password
from saas.users.schemas import AcceptedSchema, UserSchema
from saas.users.service import create_user
from saas.web.api import SESSION
from saas.web.blueprint import Blueprint, current_principal
from saas.web.requests import bearer_token, client_ip

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Accounts and tokens.")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@blp.route("/register", methods=["POST"])
@register_ip_limit
@blp.arguments(RegisterSchema)
@blp.response(201, UserSchema)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def register(fields):
    """Create an account.

    The email is trimmed and lower-cased. The password needs 8 to 1024 characters. The Stripe
    customer is created in the background, so `stripe_customer_id` may be null at first. A
    message with a link to verify the address is sent (`email_verified` is false until then).
    """
    return create_user(**fields)


@blp.route("/login", methods=["POST"])
@login_ip_limit
@login_account_limit
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "application/json": {"schema": LoginSchema},
            "application/x-www-form-urlencoded": {"schema": OAuth2PasswordFormSchema},
        },
    }
)
@blp.response(200, TokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def login():
    """Log in with email and password; returns an access and a refresh token.

    Send JSON `{email, password}`, or the OAuth2 password form (`username`, `password`) as
    Swagger UI's *Authorize* button does. A wrong password and an unknown email get the same 401.
    """
    credentials = _login_credentials()
    user = service.authenticate(credentials["email"], credentials["password"])
    pair = service.start_session(user, user_agent=request.user_agent.string, ip_address=client_ip())
    return pair, 200, NO_STORE


@blp.route("/refresh", methods=["POST"])
@refresh_ip_limit
@blp.arguments(RefreshSchema, required=False)
@blp.response(200, TokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.doc(security=[{SESSION.name: []}, {}])
def refresh(fields):
    """Exchange a refresh token for a new token pair.

    Send `{refresh_token}` in the body or the refresh token as `Authorization: Bearer`. The old
    refresh token is retired: presenting it again is treated as theft and ends the session.
    """
    raw_token = fields.get("refresh_token") or bearer_token()
    if not raw_token:
        raise service.TokenRejected("Missing refresh token.")
    return service.rotate_refresh_token(raw_token), 200, NO_STORE


@blp.route("/logout", methods=["POST"])
@blp.auth(SESSION)
@blp.response(204)
def logout():
    """End this session: the access token and its refresh token stop working at once."""
    service.end_session(current_principal().session_id)


@blp.route("/logout-all", methods=["POST"])
@blp.auth(SESSION)
@blp.response(204)
def logout_all():
    """End every session of the current user, on every device.

    Links mailed for the account before (address verification or change, password reset) stop
    working too."""
    service.log_out_everywhere(current_principal().user)


@blp.route("/verify-email", methods=["POST"])
@blp.arguments(VerifyEmailSchema)
@blp.response(204)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(409, response="CONFLICT")
def verify_email_address(fields):
    """Verify an address with the token of a mailed link.

    A verification link marks the account's address verified (opening it again is a harmless
    204); a link from an email change (`POST /api/v1/users/me/email`) also makes it the
    account's address, once, and only the latest change's link does. Every link is bound to the
    account's security as it was when the link was asked for: after a password change or reset,
    an address change, logout-all or deactivation, links mailed before are a 400 and change
    nothing. A bad or expired token is a 400; a change to an address another account took
    meanwhile is a 409.
    """
    verify_email(fields["token"])


@blp.route("/verify-email/resend", methods=["POST"])
@blp.auth(SESSION, limits=[email_send_limit])
@blp.response(202, AcceptedSchema)
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def resend_verification():
    """Send a new verification link to the current user's address (nothing if it is verified).

    Rate limited per user (`RATELIMIT_EMAIL_SEND`). Earlier links keep working until they expire.
    """
    user = current_principal().user
    if not user.email_verified:
        send_verification(user)
    return {"message": "If your address is not verified yet, a new link is on its way."}


@blp.route("/password-reset", methods=["POST"])
@password_reset_ip_limit
@password_reset_account_limit
@blp.arguments(PasswordResetSchema)
@blp.response(202, AcceptedSchema)
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def request_password_reset(fields):
    """Ask for a password reset link by mail.

    The answer is the same, and as fast, whether or not an account has this address: the
    lookup and the message happen in the background. The link works once, for
    `PASSWORD_RESET_TOKEN_MINUTES`. Rate limited per address and per email asked about.
    """
    ask_for_password_reset(fields["email"])
    return {"message": "If an account has this address, a link to reset its password is on its way."}


@blp.route("/password-reset/confirm", methods=["POST"])
@blp.arguments(PasswordResetConfirmSchema)
@blp.response(204)
@blp.alt_response(400, response="BAD_REQUEST")
def confirm_password_reset(fields):
    """Set a new password with the token of a reset link.

    Every session and API key of the account ends, the address counts as verified, and a
    notice goes to it. The password follows the registration rules (422). A token that was used,
    expired, or was mailed before a security change of the account (a password change or
    reset, an address change, logout-all, deactivation) is a 400.
    """
    reset_password(fields["token"], fields["password"])


def _login_credentials():
    """JSON `{email, password}` or the OAuth2 form, validated by their schemas."""
    parser = blp.ARGUMENTS_PARSER
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = parser.parse(OAuth2PasswordFormSchema(), request, location="form")
        return {"email": form["username"], "password": form["password"]}
    return parser.parse(LoginSchema(), request, location="json")
