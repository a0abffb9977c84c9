"""Registration, login (with its second-factor step), refresh, logout and sessions; two-factor
enrolment."""
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
    CodeSchema,
    LOGIN_RESULT_RESPONSES,
    CurrentPasswordSchema,
    LoginResultSchema,
    LoginSchema,
    MfaStatusSchema,
    MfaVerifySchema,
    OAuth2PasswordFormSchema,
    PasswordAndCodeSchema,
    PasswordResetConfirmSchema,
    PasswordResetSchema,
    RecoveryCodesSchema,
    RefreshSchema,
    RegisterSchema,
    SessionSchema,
    TokenSchema,
    TotpSetupSchema,
    VerifyEmailSchema,
)
from saas.users import mfa
from saas.users.addresses import send_verification, verify_email
from saas.users.limits import email_send_limit, password_check_limit
from saas.users.recovery import ask_for_password_reset, reset_password
from saas.users.schemas import AcceptedSchema, UserSchema
from saas.users.service import create_user
from saas.web.api import SESSION
from saas.web.blueprint import PASSWORD_METHOD, ApiBlueprint, current_principal
from saas.web.requests import bearer_token, client_ip

blp = ApiBlueprint("auth", __name__, url_prefix="/auth", description="Accounts and tokens.")

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
@blp.response(200, LoginResultSchema)
@blp.doc(responses=LOGIN_RESULT_RESPONSES)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def login():
    """Log in with email and password; returns an access and a refresh token.

    Send JSON `{email, password}`, or the OAuth2 password form (`username`, `password`) as
    Swagger UI's *Authorize* button does. A wrong password and an unknown email get the same 401.
    For an account with two-factor authentication on, the answer is instead
    `{mfa_required: true, mfa_token, mfa_methods, expires_in}` and no token: send the token with a
    code to `POST /api/v1/auth/mfa/verify`.
    """
    credentials = _login_credentials()
    user = service.check_credentials(credentials["email"], credentials["password"])
    return service.complete_login(user, PASSWORD_METHOD, **_client()), 200, NO_STORE


@blp.route("/mfa/verify", methods=["POST"])
@login_ip_limit
@login_account_limit
@blp.arguments(MfaVerifySchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def verify_second_factor(fields):
    """Complete a login that needs two-factor: the `mfa_token` of the login and a code.

    `code` is the current 6-digit code of the authenticator app (each code works once) or one
    unused recovery code (any case, with or without its dash). Answers the token pair, as a login
    does. A wrong, expired, reused or unknown token or code is the same 401; the token works once,
    for `MFA_TOKEN_SECONDS`, and dies after 5 wrong codes. Wrong codes count against the account's
    failed-login limit, like wrong passwords.
    """
    pair = service.verify_second_factor(fields["mfa_token"], fields["code"], **_client())
    return pair, 200, NO_STORE


@blp.route("/mfa", methods=["GET"])
@blp.auth(SESSION)
@blp.response(200, MfaStatusSchema)
def mfa_status():
    """Whether two-factor authentication is on, its methods, and how many recovery codes are left."""
    return mfa.status(current_principal().user)


@blp.route("/mfa/totp/setup", methods=["POST"])
@blp.auth(SESSION, limits=[password_check_limit])
@blp.arguments(CurrentPasswordSchema)
@blp.response(200, TotpSetupSchema)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def set_up_totp(fields):
    """Start setting up an authenticator app: its secret, `otpauth://` URI and QR code (SVG).

    Nothing is active until `POST /api/v1/auth/mfa/totp/enable` gets a code from it; a new setup
    replaces one not confirmed yet. Needs the current password (400 when wrong); 409 when
    two-factor is on already.
    """
    return mfa.begin_setup(current_principal().user, fields["current_password"]), 200, NO_STORE


@blp.route("/mfa/totp/enable", methods=["POST"])
@blp.auth(SESSION)
@blp.arguments(CodeSchema)
@blp.response(200, RecoveryCodesSchema)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(409, response="CONFLICT")
def enable_totp(fields):
    """Turn two-factor on with a code from the authenticator being set up.

    Answers ten recovery codes, shown this once. Links mailed before stop working, and a notice
    goes to the account's address. A wrong code is a 400 and changes nothing.
    """
    return {"recovery_codes": mfa.enable(current_principal().user, fields["code"])}, 200, NO_STORE


@blp.route("/mfa/totp/disable", methods=["POST"])
@blp.auth(SESSION, limits=[password_check_limit])
@blp.arguments(PasswordAndCodeSchema)
@blp.response(204)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def disable_totp(fields):
    """Turn two-factor off: needs the current password (400 when wrong) and a code (401 when
    missing or wrong). The authenticator and the recovery codes are forgotten and a notice is
    mailed. 409 while an organization the user belongs to requires two-factor."""
    mfa.disable(current_principal().user, fields["current_password"], fields["code"])


@blp.route("/mfa/recovery-codes", methods=["POST"])
@blp.auth(SESSION, limits=[password_check_limit])
@blp.arguments(PasswordAndCodeSchema)
@blp.response(200, RecoveryCodesSchema)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def regenerate_recovery_codes(fields):
    """Ten new recovery codes (shown this once); the old ones stop working. Needs the current
    password and a code, as turning two-factor off does."""
    user = current_principal().user
    codes = mfa.regenerate_recovery_codes(user, fields["current_password"], fields["code"])
    return {"recovery_codes": codes}, 200, NO_STORE


@blp.route("/sessions", methods=["GET"])
@blp.auth(SESSION)
@blp.response(200, SessionSchema(many=True))
def list_sessions():
    """The caller's open sessions (logins on each device), newest first, with how each was
    authenticated; `current` marks the one this request uses."""
    principal = current_principal()
    sessions = service.open_sessions(principal.user_id)
    for session in sessions:
        session.current = session.id == principal.session_id
    return sessions


@blp.route("/sessions/<session_id>", methods=["DELETE"])
@blp.auth(SESSION)
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def end_session(session_id):
    """End one of the caller's sessions at once (its access and refresh tokens stop working).
    Anyone else's session, or one that ended already, is a 404."""
    service.end_own_session(current_principal().user_id, session_id)


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


def _client():
    """What a new session records of the client that opened it."""
    return {"user_agent": request.user_agent.string, "ip_address": client_ip()}


def _login_credentials():
    """JSON `{email, password}` or the OAuth2 form, validated by their schemas."""
    parser = blp.ARGUMENTS_PARSER
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = parser.parse(OAuth2PasswordFormSchema(), request, location="form")
        return {"email": form["username"], "password": form["password"]}
    return parser.parse(LoginSchema(), request, location="json")
