"""Registration, login, refresh and logout."""
from flask import request

from saas.auth import service
from saas.auth.limits import login_account_limit, login_ip_limit, refresh_ip_limit, register_ip_limit
from saas.auth.schemas import LoginSchema, OAuth2PasswordFormSchema, RefreshSchema, RegisterSchema, TokenSchema
from saas.users.schemas import UserSchema
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
    customer is created in the background, so `stripe_customer_id` may be null at first.
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
    """End every session of the current user, on every device."""
    service.end_all_sessions(current_principal().user_id)


def _login_credentials():
    """JSON `{email, password}` or the OAuth2 form, validated by their schemas."""
    parser = blp.ARGUMENTS_PARSER
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = parser.parse(OAuth2PasswordFormSchema(), request, location="form")
        return {"email": form["username"], "password": form["password"]}
    return parser.parse(LoginSchema(), request, location="json")
