"""Social login (``/api/v1/auth/oauth``) and the identities linked to the current user
(``/api/v1/users/me/identities``).

The authorize and callback endpoints are browser navigations: they answer redirects, never JSON
(but a 404 for a provider that is not configured). The browser is bound to its flow by an
HttpOnly, SameSite=Lax cookie (Secure, and ``__Host-`` prefixed, in production), set when the
flow begins and required at the callback (``saas/web/browser.py``).
"""
from flask import request

from saas.auth.schemas import LOGIN_RESULT_RESPONSES, LoginResultSchema
from saas.oauth import service
from saas.oauth.flow import STATE_SECONDS
from saas.oauth.limits import oauth_ip_limit
from saas.oauth.providers import PROVIDER_NAMES
from saas.oauth.schemas import (
    AuthorizeQuerySchema,
    CallbackQuerySchema,
    ExchangeSchema,
    IdentitySchema,
    LinkConfirmSchema,
    LinkStartSchema,
    ProviderSchema,
)
from saas.web.api import SESSION
from saas.web.blueprint import ApiBlueprint, current_principal
from saas.web.browser import NO_STORE, bind_browser, bound_browser, browser_binding, public_url, redirect_to
from saas.web.requests import client_ip

blp = ApiBlueprint(
    "oauth", __name__, url_prefix="/auth/oauth",
    description="Sign in with Google, GitHub, Microsoft or an OpenID Connect provider.",
)
identities_blp = ApiBlueprint(
    "identities", __name__, url_prefix="/users/me/identities",
    description="The provider accounts linked to the current user for signing in.",
)

# A provider's name in a path: one of those the app knows (a name that is not configured is a 404
# all the same); never all digits, so `/users/me/identities/{provider}` and `/{id}` cannot meet.
PROVIDER = f"<any({', '.join(PROVIDER_NAMES)}):provider>"
REDIRECT = {
    "description": "A redirect (`Location`): to the provider's sign-in page, or to the front end's "
    "`OAUTH_FRONTEND_CALLBACK_PATH` with `?code=`, `?link_code=` or `?error=`.",
    "headers": {"Location": {"schema": {"type": "string"}}},
}


def _listing_callback_errors(view):
    """The docstring (the OpenAPI description) ends with every ``?error=`` and its meaning."""
    view.__doc__ += "\n".join(f"    - `{reason}`: {meaning}" for reason, meaning in service.CALLBACK_ERRORS.items())
    return view


@blp.route("/providers", methods=["GET"])
@blp.response(200, ProviderSchema(many=True))
def list_providers():
    """The providers this app offers for signing in (`OAUTH_PROVIDERS`), in order; empty when
    social login is off. Send the browser to a provider's `authorize_url` to sign in with it."""
    return [
        {"name": name, "display_name": provider.display_name, "authorize_url": public_url("oauth.authorize", provider=name)}
        for name, provider in service.providers().items()
    ]


@blp.route(f"/{PROVIDER}/authorize", methods=["GET"])
@oauth_ip_limit
@blp.arguments(AuthorizeQuerySchema, location="query")
@blp.response(302, **REDIRECT)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def authorize(args, provider):
    """Begin signing in with a provider: a redirect to its sign-in page.

    Open it in the browser (a navigation): the answer sets the cookie that binds the sign-in to
    this browser (HttpOnly, SameSite=Lax, Secure in production) and sends it to the provider with
    a `state` (single-use, 10 minutes), PKCE (S256) and, for OpenID Connect, a `nonce`. With
    `intent` (from `POST /api/v1/users/me/identities/{provider}`) it links the provider to that
    account instead. A provider that is not configured is a 404; when the provider cannot be
    used (its discovery document unreachable or wrong), or `intent` is invalid, the browser goes
    to the front end's callback page with `?error=` instead.
    """
    browser = browser_binding()
    try:
        target = service.sign_in_url(
            provider, browser=browser, callback_url=public_url("oauth.callback", provider=provider),
            intent=args.get("intent"),
        )
    except service.FlowFailed as failure:
        return _to_front_end(error=failure.reason)
    return bind_browser(redirect_to(target), browser, STATE_SECONDS)


@blp.route(f"/{PROVIDER}/callback", methods=["GET"])
@oauth_ip_limit
@blp.arguments(CallbackQuerySchema, location="query")
@blp.response(302, **REDIRECT)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@_listing_callback_errors
def callback(args, provider):
    """Where the provider sends the browser back: register
    `<PUBLIC_API_URL>/api/v1/auth/oauth/{provider}/callback` at the provider, exactly.

    The state must be this browser's (its cookie), unused and under 10 minutes old; the code is
    exchanged with its PKCE verifier and the ID token checked (signature from the provider's
    keys, `iss`, `aud`, `exp`, `nonce`), or GitHub's API read. The account is found by the
    provider identity, never by the address. The browser then goes to `FRONTEND_URL` +
    `OAUTH_FRONTEND_CALLBACK_PATH` with `?code=<one-time code>` (post it to
    `POST /api/v1/auth/oauth/exchange`), `?link_code=` for a link (post it to
    `POST /api/v1/users/me/identities/confirm`), or `?error=` with one of:

    """
    try:
        param, code = service.finish(
            provider, browser=bound_browser(), state=args.get("state"), code=args.get("code"),
            error=args.get("error"), ip_address=client_ip(),
        )
    except service.FlowFailed as failure:
        return _to_front_end(error=failure.reason)
    return _to_front_end(**{param: code})


@blp.route("/exchange", methods=["POST"])
@oauth_ip_limit
@blp.arguments(ExchangeSchema)
@blp.response(200, LoginResultSchema)
@blp.doc(responses=LOGIN_RESULT_RESPONSES)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def exchange(fields):
    """Exchange the one-time `code` of a social login for what `POST /api/v1/auth/login` answers:
    the token pair, or for an account with two-factor on `{mfa_required: true, mfa_token,
    mfa_methods, expires_in}` (then `POST /api/v1/auth/mfa/verify`).

    The code works once, for 60 seconds, and only while the account's security is as it was (a
    password change, deactivation or logout-all voids it); any bad, used or expired code is a 401.
    """
    answer = service.exchange(fields["code"], user_agent=request.user_agent.string, ip_address=client_ip())
    return answer, 200, NO_STORE


@identities_blp.route("", methods=["GET"])
@identities_blp.auth(SESSION)
@identities_blp.response(200, IdentitySchema(many=True))
def list_identities():
    """The provider accounts linked to the current user for signing in, oldest first."""
    return service.identities_of(current_principal().user)


@identities_blp.route(f"/{PROVIDER}", methods=["POST"])
@identities_blp.auth(SESSION)
@identities_blp.response(200, LinkStartSchema)
@identities_blp.alt_response(404, response="NOT_FOUND")
def start_link(provider):
    """Begin linking a provider to the current account: the `authorize_url` to open in this
    browser (single-use, 10 minutes).

    The provider sends the browser back to the front end's callback page with `?link_code=`;
    nothing is linked until `POST /api/v1/users/me/identities/confirm` posts it under a session
    of this same account. A provider that is not configured is a 404.
    """
    intent = service.request_link(current_principal().user, provider)
    return {"authorize_url": public_url("oauth.authorize", provider=provider, intent=intent)}, 200, NO_STORE


@identities_blp.route("/confirm", methods=["POST"])
@identities_blp.auth(SESSION)
@identities_blp.arguments(LinkConfirmSchema)
@identities_blp.response(201, IdentitySchema)
@identities_blp.alt_response(400, response="BAD_REQUEST")
@identities_blp.alt_response(409, response="CONFLICT")
def confirm_link(fields):
    """Link the provider account of a `link_code` to the current account.

    Only a session of the account that asked for the link can: with any other session, or a bad,
    used or expired code, nothing is linked (400). So a link URL that leaks, opened by someone who
    signs in at the provider as themselves, attaches nothing. A provider account linked to an
    account already is a 409. A notice is mailed to the account's address.
    """
    return service.confirm_link(current_principal().user, fields["code"]), 201


@identities_blp.route("/<int:identity_id>", methods=["DELETE"])
@identities_blp.auth(SESSION)
@identities_blp.response(204)
@identities_blp.alt_response(404, response="NOT_FOUND")
@identities_blp.alt_response(409, response="CONFLICT")
def unlink(identity_id):
    """Unlink a provider account: it no longer signs in to this one. 409 when it is the account's
    last way to log in (no password and no other provider): set a password with
    `POST /api/v1/auth/password-reset`, or link another provider, first. Another account's
    identity is a 404. A notice is mailed."""
    service.unlink(current_principal().user, identity_id)


def _to_front_end(**params):
    return redirect_to(service.front_end_callback(**params))
