"""The ApiBlueprint every feature uses: flask-smorest's, plus ``auth()``, the one gate.

A protected view carries ``@blp.auth(...)`` right under ``@blp.route``::

    @blp.route("/me")
    @blp.auth(SESSION, API_KEY)
    @blp.response(200, UserSchema)
    def get_me():
        return current_principal().user

The gate runs before anything below it (so a caller without credentials gets 401, never a 422
about its body), verifies the credentials once, puts the caller in ``current_principal()``,
then applies the rate limits keyed on that caller, and documents the OpenAPI ``security`` and
the 401 response. Which schemes exist and how each is verified is wired in ``create_app``
(``register_authenticators``): the auth package verifies sessions, apikeys verifies API keys.

Every operation gets an OpenAPI ``operationId`` without being asked (``saas.web.api.OperationIds``):
``<blueprint name>_<endpoint>``, so ``get_me`` in the ``users`` blueprint is ``users_get_me``.
The typed TypeScript client (``make client``) names operations by it, so it must not change.
"""
import functools
from dataclasses import dataclass, replace
from typing import Any, Callable

import flask_smorest
from flask_smorest.utils import resolve_schema_instance
import marshmallow as ma
from flask import current_app, g, request

from saas.core.actor import Actor, current_actor
from saas.core.errors import DomainError, Forbidden, NotFound, Unauthenticated
from saas.core.ids import MAX_ID
from saas.core.permissions import Permission
from saas.extensions import limiter
from saas.web.api import SESSION, SecurityScheme
from saas.web.dump import fast_dump
from saas.web.edge import USER_ID_KEY
from saas.web.json import ArgumentsParser
from saas.web.ratelimit import count_gate_limits
from saas.web.requests import client_ip

ORG_HEADER = "X-Org-Id"
ORG_SCOPES = ("path", "acting")
# How a login session was authenticated (``Principal.auth_methods``).
PASSWORD_METHOD, MFA_METHOD, OAUTH_METHOD, SSO_METHOD = "password", "mfa", "oauth", "sso"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the gate found them: the user, and the session or API key used; for
    views scoped to an organization, that organization and the caller's role in it."""

    user: Any
    scheme: SecurityScheme
    session_id: str | None = None
    api_key_id: int | None = None
    # The organization an API key belongs to (a key acts only for it).
    api_key_org_id: int | None = None
    org: Any = None
    role: str | None = None
    # How the session was authenticated ("password", "mfa"...); empty for an API key.
    auth_methods: tuple = ()
    # The organization whose single sign-on opened the session, if one did.
    sso_org_id: int | None = None

    @property
    def user_id(self):
        return self.user.id

    @property
    def rate_limit_key(self):
        """Whose budget the call spends: an organization's key, the organization's (shared by all
        its keys); a login session or a personal key, the user's (shared by all their sessions
        and personal keys). More keys never buy more requests."""
        if self.api_key_org_id is not None:
            personal = self.user.personal_org
            if personal is None or self.api_key_org_id != personal.id:
                return f"org:{self.api_key_org_id}"
        return f"user:{self.user.id}"


@dataclass(frozen=True)
class Authenticator:
    """How one scheme's credentials are found in a request and verified.

    ``credentials()`` returns the raw credentials the request carries for this scheme, or None;
    ``verify(raw)`` returns the Principal or raises ``Unauthenticated``.
    """

    scheme: SecurityScheme
    credentials: Callable[[], str | None]
    verify: Callable[[str], Principal]


def register_authenticators(app, authenticators):
    """Install the authenticators, in precedence order: when a request carries credentials of
    several accepted schemes, the first one listed here is the one verified."""
    app.extensions["authenticators"] = tuple(authenticators)


@dataclass(frozen=True)
class OrgAccess:
    """How the gate finds the organization of a scoped view (wired in ``create_app``):

    - ``member(principal, org_id)``: for ``org="path"``, the organization the URL names and the
      caller's role, raising NotFound for anyone who is not a member;
    - ``acting(principal, header)``: for ``org="acting"``, the organization the call acts for
      (an API key's, or the one ``X-Org-Id`` names, or the caller's personal one) and the role;
    - ``check(role, permission)``: raises Forbidden unless the role has the permission;
    - ``policy(principal, org)``: raises Forbidden when the organization's own rules (two-factor
      required) refuse the caller.
    """

    member: Callable
    acting: Callable
    check: Callable
    policy: Callable


def register_org_access(app, access):
    app.extensions["org_access"] = access


def current_principal():
    """The caller of a gated view."""
    principal = g.get("principal")
    if principal is None:
        raise RuntimeError("no caller: current_principal() is only for views behind @blp.auth")
    return principal


def identify_caller(accepted):
    """The Principal for the first accepted scheme whose credentials the request carries."""
    presented = []
    for authenticator in current_app.extensions["authenticators"]:
        raw = authenticator.credentials()
        if not raw:
            continue
        if authenticator.scheme in accepted:
            return authenticator.verify(raw)
        presented.append(authenticator.scheme)
    if presented:
        raise Unauthenticated("These credentials are not accepted here; this endpoint needs a login session.")
    raise Unauthenticated("Missing credentials: send `Authorization: Bearer <access token>`.")


# Limits for gated views: RATELIMIT_DEFAULT per caller (per address while unauthenticated),
# checked after the gate instead of in flask-limiter's before-request hook.
authenticated_default_limit = limiter.limit(
    lambda: current_app.config["RATELIMIT_DEFAULT"], override_defaults=True
)


class EmailNotVerified(Forbidden):
    message = (
        "Your email address is not verified: open the link we mailed you, or ask for a new one "
        "(POST /api/v1/auth/verify-email/resend)."
    )

    def __init__(self):
        super().__init__(errors={"reason": ["email_not_verified"]})


class SuperuserRequired(Forbidden):
    message = "This needs a superuser (an operator's account)."

    def __init__(self):
        super().__init__(errors={"reason": ["superuser_required"]})


class SecondFactorSessionRequired(Forbidden):
    message = "The admin API needs a login session that passed two-factor authentication (ADMIN_REQUIRE_MFA)."

    def __init__(self):
        super().__init__(errors={"reason": ["mfa_required"]})


class ApiBlueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the auth gate (``auth``). Its operations get their
    ``operationId`` from ``saas.web.api.OperationIds``.

    ``requires_verified_email``: with REQUIRE_VERIFIED_EMAIL on, the gated views of this
    blueprint refuse callers whose address is not verified (403, naming the reason).
    """

    ARGUMENTS_PARSER = ArgumentsParser()

    def __init__(self, *args, requires_verified_email=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.requires_verified_email = requires_verified_email

    def response(self, status_code, schema=None, **kwargs):
        """flask-smorest's ``response``, whose schema dumps the view's answer with ``fast_dump``
        (saas.web.dump) where it can."""
        schema = resolve_schema_instance(schema)  # as flask-smorest's own would
        if isinstance(schema, ma.Schema) and "dump" not in vars(schema):
            dump = fast_dump(schema)
            if dump is not None:
                schema.dump = dump
        return super().response(status_code, schema, **kwargs)

    def auth(self, *schemes, limits=(), org=None, permission=None, superuser=False, verified_email=False,
             policy_exempt=None):
        """Gate the view: the caller must present credentials of one of ``schemes``.

        ``limits`` are flask-limiter limits for this view that key on the caller (or on the
        organization the gate admitted them to: ``current_principal().org``, set only for callers
        it lets in); they are checked together with the default limit once the caller is known,
        before any refusal is answered, so refused attempts count. ``org`` scopes the
        view to an organization: ``"path"`` (the ``org_id`` of the URL; non-members get a 404)
        or ``"acting"`` (see ``OrgAccess``); ``permission`` is what the caller's role there must
        allow (403 otherwise). The organization and role are then on ``current_principal()``.
        ``superuser``: only a superuser's login session is admitted (403 for anyone else); it
        takes ``SESSION`` alone, never an API key (a key is refused with 401 like anywhere a
        session is needed), so an operator's powers never sit in a script's credentials; with
        ADMIN_REQUIRE_MFA on, the session must have passed two-factor (403 otherwise).
        ``verified_email``: the caller's address must be verified (403, ``EmailNotVerified``),
        whatever REQUIRE_VERIFIED_EMAIL says: for what sends mail to others.
        ``policy_exempt(principal, view_args)``: true when the organization's own rules (two-factor
        required) do not apply to this call (a member leaving it).
        An integer id in the path that no row can have (past ``MAX_ID``) is a 404 once the
        caller is admitted, never a question to the database.
        """
        if not schemes:
            raise ValueError("auth() needs at least one scheme")
        if org not in (None, *ORG_SCOPES) or (permission is not None and org is None):
            raise ValueError("auth(): org is 'path' or 'acting', and a permission needs one")
        if permission is not None and not isinstance(permission, Permission):
            raise TypeError(f"auth(permission=...) takes a Permission (saas.core.permissions), not {permission!r}")
        if superuser and schemes != (SESSION,):
            raise ValueError("auth(superuser=True) admits a login session only: auth(SESSION, superuser=True)")

        def decorator(view):
            @functools.wraps(view)
            def admitted(*args, **kwargs):
                failure = g.pop("authentication_failure", None)
                if failure is not None:
                    raise failure
                if superuser and not g.principal.user.is_superuser:
                    raise SuperuserRequired()
                if superuser and current_app.config["ADMIN_REQUIRE_MFA"] and MFA_METHOD not in g.principal.auth_methods:
                    raise SecondFactorSessionRequired()
                if verified_email or (self.requires_verified_email and current_app.config["REQUIRE_VERIFIED_EMAIL"]):
                    if not g.principal.user.email_verified:
                        raise EmailNotVerified()
                refusal = g.pop("organization_refusal", None)
                if refusal is not None:
                    raise refusal
                _refuse_ids_past_every_id(request.view_args)
                return view(*args, **kwargs)

            # Counted in one round trip to Redis (saas.web.ratelimit); where that path does not
            # serve, stacked flask-limiter decorators check every limit of the view in the innermost.
            gate_limits = (authenticated_default_limit, *limits)
            limited = admitted
            for limit in gate_limits:
                limited = limit(limited)

            @functools.wraps(view)
            def gated(*args, **kwargs):
                # ``g`` outlives the request where an app context was pushed around it (scripts,
                # tests): nothing an earlier request found may speak for this one.
                context_globals = g._get_current_object()  # (each use of the proxy looks it up)
                for name in ("principal", "authentication_failure", "organization_refusal"):
                    context_globals.pop(name, None)
                try:
                    principal = context_globals.principal = identify_caller(schemes)
                    request.environ[USER_ID_KEY] = str(principal.user_id)
                    current_actor.set(Actor(principal.user_id, client_ip()))
                except Unauthenticated as failure:
                    # Counted against the address's limit before it is answered.
                    context_globals.authentication_failure = failure
                else:
                    if org is not None:
                        # Found before the limits count, for limits kept per organization;
                        # answered after, in turn.
                        try:
                            context_globals.principal = _with_org(principal, org, permission, policy_exempt)
                        except DomainError as refusal:
                            context_globals.organization_refusal = refusal
                if not current_app.config["RATELIMIT_ENABLED"] or count_gate_limits(limiter, gate_limits):
                    return admitted(*args, **kwargs)
                return limited(*args, **kwargs)  # flask-limiter counts them (its storage is down...)

            gated.auth_schemes = schemes
            gated.requires_superuser = superuser
            gated.permission = permission
            if permission is not None:
                gated.__doc__ = f"{(view.__doc__ or '').rstrip()}\n\n{permission_note(permission)}"
            security = [requirement for scheme in schemes for requirement in scheme.requirements]
            documented = self.alt_response(401, response="UNAUTHORIZED")(self.doc(security=security)(gated))
            if superuser or verified_email or self.requires_verified_email or org is not None:
                documented = self.alt_response(403, response="FORBIDDEN")(documented)
            if org is not None:
                documented = self.alt_response(404, response="NOT_FOUND")(documented)
            if org == "acting":
                documented = self.doc(parameters=[ORG_PARAMETER])(documented)
            if permission is not None:
                documented = self.doc(**{"x-permission": permission.value})(documented)
            return documented

        return decorator


def permission_note(permission):
    """The line an operation's description gets for the permission it needs."""
    return (f"**Permission:** `{permission.value}`: {permission.description} "
            "The roles that hold it: see the role table in the docs (Organizations and roles).")


ORG_PARAMETER = {
    "in": "header",
    "name": ORG_HEADER,
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
    "description": "The organization to act for (its quota and plan), if the caller is a member; "
    "the caller's personal organization when absent. An organization's API key acts for it only.",
}


def _refuse_ids_past_every_id(view_args):
    """404 for an id in the path that no row can have (the organization's is refused by
    ``OrgAccess.member`` as a non-member's): never a database error."""
    for name, value in (view_args or {}).items():
        if type(value) is int and value > MAX_ID:
            raise NotFound(f"No such {name.removesuffix('_id').replace('_', ' ')}.")


def _with_org(principal, scope, permission, policy_exempt):
    access = current_app.extensions["org_access"]
    if scope == "path":
        org, role = access.member(principal, request.view_args["org_id"])
    else:
        org, role = access.acting(principal, request.headers.get(ORG_HEADER))
    if policy_exempt is None or not policy_exempt(principal, request.view_args):
        access.policy(principal, org)
    if permission is not None:
        access.check(role, permission)
    return replace(principal, org=org, role=role)
