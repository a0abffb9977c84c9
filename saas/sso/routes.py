"""Enterprise single sign-on: an organization's verified domains and identity provider
(``/api/v1/orgs/{org_id}/domains``, ``/api/v1/orgs/{org_id}/sso``), and logging in through it
(``/api/v1/auth/sso``).

The authorize and callback endpoints are browser navigations, like social login's: they answer
redirects, never JSON, and bind the flow to the browser with the same cookie
(``saas/web/browser.py``).
"""
from flask import request

from saas.core.permissions import Permission
from saas.oauth.flow import STATE_SECONDS
from saas.oauth.limits import oauth_ip_limit
from saas.oauth.routes import listing_callback_errors
from saas.oauth.schemas import CallbackQuerySchema
from saas.oauth.service import front_end_callback
from saas.sso import connection, domains, login
from saas.sso.schemas import (
    SsoAuthorizeQuerySchema,
    ConnectionSchema,
    ConnectionUpdateSchema,
    DomainCreateSchema,
    DomainSchema,
    StartResultSchema,
    StartSchema,
)
from saas.web.api import SESSION
from saas.web.blueprint import ApiBlueprint, current_principal
from saas.web.browser import NO_STORE, bind_browser, bound_browser, browser_binding, public_url, redirect_to
from saas.web.requests import client_ip

blp = ApiBlueprint(
    "sso", __name__, url_prefix="/auth/sso",
    description="Log in through your organization's identity provider (enterprise single sign-on).",
)
org_sso_blp = ApiBlueprint(
    "org_sso", __name__, url_prefix="/orgs",
    description="An organization's verified domains and its OpenID Connect identity provider.",
)

DOMAINS = "/<int:org_id>/domains"
DOMAIN = DOMAINS + "/<int:domain_id>"
REDIRECT = {
    "description": "A redirect (`Location`): to the provider's sign-in page, or to the front end's "
    "`OAUTH_FRONTEND_CALLBACK_PATH` with `?code=` or `?error=`.",
    "headers": {"Location": {"schema": {"type": "string"}}},
}


def _connection_view(stored):
    return {
        "issuer": stored.issuer, "client_id": stored.client_id, "enforce": stored.enforce,
        "default_role": stored.default_role, "redirect_uri": public_url("sso.callback"),
        "created_at": stored.created_at, "updated_at": stored.updated_at,
    }


@org_sso_blp.route(DOMAINS, methods=["POST"])
@org_sso_blp.auth(SESSION, org="path", permission=Permission.SSO_MANAGE)
@org_sso_blp.arguments(DomainCreateSchema)
@org_sso_blp.response(201, DomainSchema)
@org_sso_blp.alt_response(409, response="CONFLICT")
def add_domain(fields, org_id):
    """Claim a domain for single sign-on: publish the answer's `txt_value` as a TXT record at
    `txt_name`, then `POST .../domains/{id}/verify`. Public mail domains (gmail.com, outlook.com...)
    are a 422; a domain the organization claimed already, a personal organization, or more than 50
    domains are a 409. Another organization's pending claim does not stop this one."""
    principal = current_principal()
    return domains.claim(principal.org, principal.user.id, fields["domain"]), 201


@org_sso_blp.route(DOMAINS, methods=["GET"])
@org_sso_blp.auth(SESSION, org="path", permission=Permission.SSO_READ)
@org_sso_blp.response(200, DomainSchema(many=True))
def list_domains(org_id):
    """The organization's domains, verified or not, oldest first."""
    return domains.domains_of(org_id)


@org_sso_blp.route(DOMAIN + "/verify", methods=["POST"])
@org_sso_blp.auth(SESSION, org="path", permission=Permission.SSO_MANAGE)
@org_sso_blp.response(200, DomainSchema)
@org_sso_blp.alt_response(409, response="CONFLICT")
@org_sso_blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def verify_domain(org_id, domain_id):
    """Look the domain's TXT record up now (DNS_NAMESERVERS): `verified: true` when it holds
    `txt_value`. Otherwise 409, saying what was looked up and what DNS answered (`errors.found`);
    409 too when another organization has verified the domain (`errors.reason:
    ["domain_verified_by_another_organization"]`): one organization holds a domain at a time.
    503 when DNS cannot be asked. While SSO is enforced, the accounts on a newly verified domain
    are held to it at once (their other sessions end). Verifying a verified domain changes nothing."""
    principal = current_principal()
    return domains.verify(principal.org, principal.user.id, domain_id)


@org_sso_blp.route(DOMAIN, methods=["DELETE"])
@org_sso_blp.auth(SESSION, org="path", permission=Permission.SSO_MANAGE)
@org_sso_blp.response(204)
def remove_domain(org_id, domain_id):
    """Remove a domain: its addresses no longer sign in through the organization, nor are they
    held to its SSO. The TXT record can then be taken down."""
    principal = current_principal()
    domains.remove(principal.org, principal.user.id, domain_id)


@org_sso_blp.route("/<int:org_id>/sso", methods=["PUT"])
@org_sso_blp.auth(SESSION, org="path", permission=Permission.SSO_MANAGE)
@org_sso_blp.arguments(ConnectionUpdateSchema)
@org_sso_blp.response(200, ConnectionSchema)
@org_sso_blp.alt_response(409, response="CONFLICT")
def put_connection(fields, org_id):
    """Connect the organization's OpenID Connect provider (Okta, Microsoft Entra ID, Google
    Workspace, Keycloak...), or replace the connection. Register the answer's `redirect_uri` at
    the provider. The issuer's discovery document is fetched and checked first: unreachable,
    invalid, or naming another issuer is a 422 naming the problem, and nothing is stored. The
    client secret is stored encrypted and never answered.

    `enforce: true`: accounts on the organization's verified domains can log in only through it
    (a password or social login is a 401 / `?error=sso_required`, a password reset mails
    nothing), and their sessions opened otherwise end now. Owners with two-factor on keep password
    login (break glass). A personal organization is a 409."""
    principal = current_principal()
    return _connection_view(connection.save(principal.org, principal.user.id, fields)), 200, NO_STORE


@org_sso_blp.route("/<int:org_id>/sso", methods=["GET"])
@org_sso_blp.auth(SESSION, org="path", permission=Permission.SSO_READ)
@org_sso_blp.response(200, ConnectionSchema)
def get_connection(org_id):
    """The organization's SSO connection (never its secret); 404 when it has none."""
    return _connection_view(connection.get(org_id))


@org_sso_blp.route("/<int:org_id>/sso", methods=["DELETE"])
@org_sso_blp.auth(SESSION, org="path", permission=Permission.SSO_MANAGE)
@org_sso_blp.response(204)
def delete_connection(org_id):
    """Turn the organization's SSO off: nothing is enforced any more, and the links between its
    provider's people and their accounts are forgotten (a new connection links them again by
    their verified domain). Accounts and memberships stay; sessions opened through it stay open."""
    principal = current_principal()
    connection.remove(principal.org, principal.user.id)


@blp.route("/start", methods=["POST"])
@oauth_ip_limit
@blp.arguments(StartSchema)
@blp.response(200, StartResultSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def start(fields):
    """Find the single sign-on of an address: when an organization has verified its domain and
    connected a provider, the `authorize_url` to send the browser to (a navigation) and the
    organization; 404 otherwise. This tells anyone which domains use SSO, as every SSO login page
    does; it is limited per client address (`RATELIMIT_OAUTH_IP`)."""
    org = login.organization_for(fields["email"])
    url = public_url("sso.authorize", email=fields["email"])
    return {"authorize_url": url, "organization": {"id": org.id, "name": org.name}}, 200, NO_STORE


@blp.route("/authorize", methods=["GET"])
@oauth_ip_limit
@blp.arguments(SsoAuthorizeQuerySchema, location="query")
@blp.response(302, **REDIRECT)
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def authorize(args):
    """Begin signing in through the address's organization: a redirect to its provider.

    Open it in the browser: the answer sets the cookie that binds the sign-in to this browser
    (HttpOnly, SameSite=Lax, Secure in production) and sends it to the provider with a `state`
    (single-use, 10 minutes), PKCE (S256) and a `nonce`. When the address has no SSO, or the
    provider cannot be used, the browser goes to the front end's callback page with `?error=`."""
    browser = browser_binding()
    try:
        target = login.sign_in_url(args["email"], browser=browser, callback_url=public_url("sso.callback"))
    except login.SsoFailed as failure:
        return redirect_to(front_end_callback(error=failure.reason))
    return bind_browser(redirect_to(target), browser, STATE_SECONDS)


@blp.route("/callback", methods=["GET"])
@oauth_ip_limit
@blp.arguments(CallbackQuerySchema, location="query")
@blp.response(302, **REDIRECT)
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@listing_callback_errors(login.SSO_CALLBACK_ERRORS)
def callback(args):
    """Where an organization's provider sends the browser back: the `redirect_uri` of
    `GET /api/v1/orgs/{org_id}/sso`, registered at the provider exactly.

    The state must be this browser's, unused and under 10 minutes old; the code is exchanged with
    its PKCE verifier and the ID token checked as for social login. Its address must be on one of
    the organization's verified domains. The account is found by the SSO identity; a new one is
    linked to the account with its address, or a new account is made; either way it becomes a
    member. The browser then goes to `FRONTEND_URL` + `OAUTH_FRONTEND_CALLBACK_PATH` with
    `?code=<one-time code>` (post it to `POST /api/v1/auth/oauth/exchange`) or `?error=` with one of:

    """
    try:
        code = login.finish(browser=bound_browser(), state=args.get("state"), code=args.get("code"),
                            error=args.get("error"), ip_address=client_ip())
    except login.SsoFailed as failure:
        return redirect_to(front_end_callback(error=failure.reason))
    return redirect_to(front_end_callback(code=code))
